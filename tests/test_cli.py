from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
from click.testing import CliRunner
from conftest import REPO, SAMPLE_CSV

from parkcast.cli import main
from parkcast.processes import free_port
from parking_core import config


def run(args, data_dir):
    config.get_settings.cache_clear()
    os.environ["PARKCAST_DATA_DIR"] = str(data_dir)
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        del os.environ["PARKCAST_DATA_DIR"]
        config.get_settings.cache_clear()


def test_import_lots_devices(data_dir):
    r = run(["import-csv", str(SAMPLE_CSV)], data_dir)
    assert r.exit_code == 0 and "accepted: 28744" in r.output and "rejected: 12" in r.output
    assert "negative occupied" in r.output

    r = run(["lots", "--json"], data_dir)
    lots = json.loads(r.output)
    assert len(lots) == 29 and lots[0]["latest"]["observed_at"].startswith("2016-12-05")

    r = run(["devices", "add", "BHMBCCMKT01"], data_dir)
    assert r.exit_code == 0
    key = r.output.strip().splitlines()[-1]
    assert key.startswith("pk_") and len(key) > 40
    r = run(["devices", "add", "BHMBCCMKT01", "--device-id", "gate"], data_dir)
    assert r.exit_code == 0
    r = run(["devices", "add", "BHMBCCMKT01", "--device-id", "gate"], data_dir)
    assert r.exit_code != 0 and "already exists" in r.output
    r = run(["devices", "add", "NOWHERE"], data_dir)
    assert r.exit_code != 0 and "no lot" in r.output

    r = run(["devices", "list"], data_dir)
    assert "BHMBCCMKT01-cam-1" in r.output and "active" in r.output
    # The key itself is never stored or listed.
    assert key not in r.output
    assert key.encode() not in (data_dir / "parkcast.sqlite3").read_bytes()

    assert run(["devices", "revoke", "gate"], data_dir).exit_code == 0
    assert "revoked" in run(["devices", "list"], data_dir).output
    assert run(["devices", "revoke", "ghost"], data_dir).exit_code != 0


def test_import_errors_are_clear(data_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    r = run(["import-csv", str(bad)], data_dir)
    assert r.exit_code != 0 and "missing column" in r.output
    r = run(["import-csv", str(bad), "--columns", "lot=a,time=b"], data_dir)
    assert r.exit_code != 0 and "missing capacity, occupied" in r.output


def test_demo_brings_the_system_up_and_stops_on_sigint(tmp_path):
    port = free_port()
    env = {**os.environ, "PARKCAST_DATA_DIR": str(tmp_path / "demo")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "parkcast.cli", "demo", "--port", str(port), "--dagster-port", str(free_port())],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("parkcast is up" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        lots = httpx.get(f"http://127.0.0.1:{port}/v1/lots").json()
        assert len(lots) == 30  # the 29 sample lots and the edge replay lot
        saved = json.loads((tmp_path / "demo" / "demo-device.json").read_text())
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/readings",
            headers={"X-API-Key": saved["api_key"]},
            json={"lot_id": saved["lot_id"], "device_id": saved["device_id"],
                  "observed_at": "2016-12-06T08:00:00+00:00", "capacity": 577, "occupied": 60},
        )
        assert r.status_code == 201
        # The demo approved its quick model, the endpoint serves it and the reading got a forecast.
        (entry,) = r.json()["forecasts"]
        assert entry["status"] == "ok" and len(entry["forecast"]["steps"]) == 8
        stored = httpx.get(f"http://127.0.0.1:{port}/v1/lots/{saved['lot_id']}/forecast").json()
        assert stored == entry["forecast"]
        assert any("forecast endpoint http://127.0.0.1:" in line for line in lines)
        dashboard = next(line.split()[1] for line in lines if line.strip().startswith("dashboard"))
        assert "<title>parkcast</title>" in httpx.get(dashboard).text
        status = httpx.get(f"http://127.0.0.1:{port}/v1/status").json()
        assert status["models"]["production"] == 1 and status["dagster_url"].startswith("http://127.0.0.1:")
        assert status["pipeline"]["decision"].startswith("retrain: no consolidated dataset yet")
        # The edge daemon replays PKLot frames into the API: the pucpr lot gets live readings.
        deadline = time.monotonic() + 60
        while httpx.get(f"http://127.0.0.1:{port}/v1/lots/pucpr").json().get("latest") is None:
            assert time.monotonic() < deadline, "no reading from the demo's edge daemon"
            time.sleep(0.5)
        edge = httpx.get(f"http://127.0.0.1:{port}/v1/lots/pucpr").json()["latest"]
        assert edge["capacity"] == 100 and edge["device_id"] == "pi-pucpr-demo"
        # The pipeline ran once and the Dagster UI serves its graph.
        dagster_url = next(line.split()[2] for line in lines if "Dagster UI" in line)
        graph = httpx.post(f"{dagster_url}/graphql", json={"query": "{ assetNodes { assetKey { path } } }"}).json()
        keys = {"/".join(n["assetKey"]["path"]) for n in graph["data"]["assetNodes"]}
        assert {"daily_readings", "drift_report", "registered_model", "model_evaluation"} <= keys
        assert any("registered_model" in line for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    assert proc.returncode == 0, "".join(lines)
    # Its API child is gone too.
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        raise AssertionError("API still answering after demo stopped")
    except httpx.TransportError:
        pass


def test_registry_commands(data_dir):
    from parking_core.registry.local import LocalModelRegistry

    reg = LocalModelRegistry(data_dir / "registry.sqlite3")
    for i in range(2):
        reg.register("parkcast-forecaster", f"/models/m{i}", {"val_intraday_mae": 0.03 - i / 1000},
                     {"data_hash": "abc", "run_id": f"r{i}"})
    r = run(["registry", "list"], data_dir)
    assert r.exit_code == 0 and r.output.count("PendingManualApproval") == 2
    assert run(["registry", "approve", "1"], data_dir).exit_code != 0  # a note is required
    r = run(["registry", "approve", "1", "--note", "ana: backtest ok"], data_dir)
    assert r.exit_code == 0 and "Approved" in r.output
    assert run(["registry", "reject", "2", "--note", "bob: too slow"], data_dir).exit_code == 0
    r = run(["registry", "show", "2"], data_dir)
    assert json.loads(r.output)["status"] == "Rejected" and json.loads(r.output)["status_note"] == "bob: too slow"
    assert run(["registry", "show", "7"], data_dir).exit_code != 0
    reg.set_production("parkcast-forecaster", 1)
    assert "<- production" in run(["registry", "list"], data_dir).output
    r = run(["registry", "rollback"], data_dir)
    assert r.exit_code != 0 and "no earlier approved" in r.output
