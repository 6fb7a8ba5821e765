from __future__ import annotations

import json
import os

from click.testing import CliRunner
from conftest import SAMPLE_CSV

from parkcast.cli import main
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
    # The database and its write-ahead log (where a fresh row sits until a checkpoint) hold the
    # key's hash, never the key.
    from parking_core.store.port import hash_api_key

    stored = b"".join(p.read_bytes() for p in data_dir.glob("parkcast.sqlite3*"))
    assert key.encode() not in stored and hash_api_key(key).encode() in stored

    assert run(["devices", "revoke", "gate"], data_dir).exit_code == 0
    assert "revoked" in run(["devices", "list"], data_dir).output
    assert run(["devices", "revoke", "ghost"], data_dir).exit_code != 0


def test_import_errors_are_clear(data_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    r = run(["import-csv", str(bad)], data_dir)
    assert r.exit_code != 0 and "missing column" in r.output
    r = run(["import-csv", str(bad), "--columns", "lot=a,time=b"], data_dir)
    assert r.exit_code != 0 and "missing capacity, occupied or free" in r.output


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
