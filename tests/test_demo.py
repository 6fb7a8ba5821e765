"""`make demo` as a person meets it: start it, wait for the summary, open the dashboard in Chromium,
see every car park with a fresh reading (or closed, by its opening hours) and a forecast by the model
in production, press Ctrl-C, and find nothing left running."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psutil
import pytest
from conftest import REPO

from parkcast.processes import CHROMIUM, CHROMIUM_ARGS, free_port

pytestmark = pytest.mark.slow


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.add(pid)
        except psutil.NoSuchProcess:
            pass
    return left


def just_opened(lot: dict) -> bool:
    """In its first hour open a car park's first reading of the day may still be on its way."""
    if not lot["opens_at"]:
        return False
    local = datetime.now(ZoneInfo(lot["timezone"]))
    opens = local.replace(hour=int(lot["opens_at"][:2]), minute=int(lot["opens_at"][3:]), second=0)
    return timedelta(0) <= local - opens < timedelta(hours=1)


class Demo:
    """`parkcast demo` in its own session, as in a terminal (Ctrl-C is SIGINT to the foreground
    process group); remembers every process it started, to check that none is left."""

    def __init__(self, data: Path, port: int, *args: str):
        env = {**os.environ, "PARKCAST_DATA_DIR": str(data)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parkcast.cli", "demo", "--port", str(port), *args],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()
        self.family = {self.proc.pid}

    def wait_for_summary(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("parkcast is up") for line in self.lines):
            assert self.proc.poll() is None and time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.2)
        time.sleep(1)  # the rest of the summary
        self.note_children()
        return "".join(self.lines)

    def note_children(self) -> None:
        self.family |= {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}

    def ctrl_c(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.reader.join(timeout=5)

    def check_all_gone(self) -> None:
        assert self.proc.returncode == 0, "".join(self.lines)
        deadline = time.monotonic() + 15
        while alive(self.family) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {pid: psutil.Process(pid).cmdline() for pid in alive(self.family)}
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"still running after Ctrl-C: {left}"


def test_a_person_runs_the_demo(tmp_path):
    if not Path(CHROMIUM).exists():  # CI sets PARKCAST_REQUIRE_BROWSER: there a missing browser fails
        if os.environ.get("PARKCAST_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    data = tmp_path / "demo"
    port = free_port()
    demo = Demo(data, port, "--dagster-port", str(free_port()))
    try:
        out = demo.wait_for_summary()
        lines = demo.lines

        # A quiet terminal: the summary and a few event lines; the full logs are in files.
        assert len(out.splitlines()) < 40, out
        for noise in ("DEBUG", "Tip:", "Warning", "Traceback", '"level"'):
            assert noise not in out, out
        assert "drift decision" in out and "approved" in out and "replay caught up" in out
        logs = data / "logs"
        for name in ("demo", "pipeline", "api", "endpoint", "dagster", "replay", "edge"):
            assert (logs / f"{name}.log").exists(), name
            assert f"{name}" in out  # named in the summary
        pipeline_log = (logs / "pipeline.log").read_text()  # Dagster's full log of the run, with its check
        assert "STEP_SUCCESS" in pipeline_log and "ASSET_CHECK_EVALUATION" in pipeline_log
        dashboard = next(line.split()[1] for line in lines if line.strip().startswith("dashboard"))
        base = f"http://127.0.0.1:{port}"
        assert dashboard == f"{base}/"

        status = httpx.get(f"{base}/v1/status").json()
        production = next(v for v in status["models"]["versions"] if v["in_production"])
        lots = {lot["lot_id"]: lot for lot in httpx.get(f"{base}/v1/lots").json()}
        assert len(lots) == 30  # 29 Birmingham car parks and the camera lot
        now = datetime.now(UTC)
        for lot in lots.values():
            latest = datetime.fromisoformat(lot["latest"]["observed_at"])
            # Moved into the present: nothing from 2016, nothing in the future.
            assert now - timedelta(hours=17) < latest <= now + timedelta(minutes=1), lot
            assert lot["forecast"]["model_version"] == production["model_version"], lot
            assert lot["forecast"]["source"] == "model", lot
        # The camera lot is live from its edge daemon.
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/v1/lots/pucpr").json()["latest"]["device_id"] != "pi-pucpr-demo":
            assert time.monotonic() < deadline
            time.sleep(1)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(dashboard)
            page.wait_for_selector("tr[data-lot]")
            assert page.locator("tr[data-lot]").count() == 30
            assert page.locator(".badge.stale").count() == 0
            assert page.locator("#stale-count").inner_text() == "0"
            for lot_id, lot in lots.items():
                row = page.locator(f'tr[data-lot="{lot_id}"]')
                closed = row.locator(".badge.closed").count() == 1
                age = row.locator(".age time").inner_text()
                assert closed or age.endswith("min ago") or just_opened(lot), (lot_id, age)
                cell = row.locator(".forecast")
                assert cell.get_attribute("data-model") == production["model_version"]
                assert cell.get_attribute("data-source") == "model"
                assert cell.inner_text().split("%")[0].isdigit()
            # A car park's page draws its last day and the model's forecast.
            page.goto(f"{base}/#/lot/pucpr")
            page.wait_for_selector("#forecast-chart svg polygon.band")
            assert page.locator("#model-version").inner_text() == production["model_version"]
            # The status page shows the demo's pipeline run, its drift decision and the versions.
            page.goto(f"{base}/#/status")
            page.wait_for_selector("#production-version")
            assert page.locator("#production-version").inner_text() == str(production["version"])
            assert "retrain" in page.locator("#last-run").inner_text()
            assert page.locator(f'tr[data-version="{production["version"]}"] .badge.ok').count() == 1
            browser.close()

        # The Dagster UI shows the run the demo made, with its materializations.
        dagster_url = status["dagster_url"]
        runs = httpx.post(f"{dagster_url}/graphql", json={"query": "{ runsOrError { ... on Runs { results {"
                                                                      " runId status } } } }"}).json()
        assert [r["status"] for r in runs["data"]["runsOrError"]["results"]] == ["SUCCESS"]
        demo.note_children()
    finally:
        demo.ctrl_c()
    demo.check_all_gone()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    # The keys of the replay's devices are kept private in the data folder.
    devices = data / "replay" / "devices.json"
    assert oct(devices.stat().st_mode & 0o777) == "0o600" and len(json.loads(devices.read_text())) == 30

    # Started again on the same data folder: nothing imported or posted twice, and it comes up.
    db = sqlite3.connect(data / "parkcast.sqlite3")
    count = "SELECT COUNT(*), COUNT(DISTINCT lot_id || observed_at) FROM readings"
    before = db.execute(count).fetchone()[0]
    again = Demo(data, port, "--no-pipeline")
    try:
        out = again.wait_for_summary()
        assert "(0 new)" in out
        posted = json.loads((data / "replay" / "health.json").read_text())["posted"]
        assert posted < 100  # only what came due while it was stopped
        rows, distinct = db.execute(count).fetchone()
        assert rows == distinct >= before + posted  # one reading per car park and time
    finally:
        again.ctrl_c()
    again.check_all_gone()
