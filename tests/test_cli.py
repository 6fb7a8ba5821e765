from __future__ import annotations

import json
import os
from datetime import UTC, datetime

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
    r = run(["registry", "reject", "1", "--note", "too late"], data_dir)  # rejecting it would not stop serving it
    assert r.exit_code == 1 and "version 1 is in production" in r.output and "rollback" in r.output
    assert json.loads(run(["registry", "show", "1"], data_dir).output)["status"] == "Approved"


def test_registry_rollback_puts_the_previous_package_behind_the_endpoint(data_dir, gbm_package, tmp_path):
    import shutil

    from parking_core.config import Settings
    from parking_core.forecasting.models_dir import current_package, install_package
    from parking_core.forecasting.package import ModelPackage, upload_package
    from parking_core.objectstore import ObjectStore
    from parking_core.registry.local import LocalModelRegistry

    settings = Settings(data_dir=data_dir)
    objects = ObjectStore(settings.objects_url)
    second = tmp_path / "second"
    shutil.copytree(gbm_package.path, second)
    manifest = json.loads((second / "manifest.json").read_text())
    (second / "manifest.json").write_text(json.dumps({**manifest, "model_version": "gbm-second"}))
    reg = LocalModelRegistry(data_dir / "registry.sqlite3")
    for i, path in enumerate((gbm_package.path, second)):
        uri = upload_package(objects, path, f"models/run-{i}")
        v = reg.register("parkcast-forecaster", uri, {}, {"run_id": f"r{i}"})
        reg.set_status("parkcast-forecaster", v.version, "Approved", "ana")
        reg.set_production("parkcast-forecaster", v.version)
        install_package(settings, ModelPackage.load(path))
    assert current_package(settings).version == "gbm-second"
    assert "<- production" in run(["registry", "list"], data_dir).output  # versions without a val MAE
    r = run(["registry", "show", "99999999999999999999"], data_dir)
    assert r.exit_code == 2 and "is not in the range" in r.output
    r = run(["registry", "rollback"], data_dir)
    assert r.exit_code == 0 and "production is now version 1" in r.output and "deployed" in r.output
    assert current_package(settings).version == gbm_package.version  # what the endpoint loads now


def test_bad_options_and_settings_are_messages_and_a_lot_keeps_its_timezone(data_dir, tmp_path, monkeypatch):
    """import-csv into an existing lot reads naive times in the lot's timezone (never shifted by a
    default), refuses another one before writing; bad options and settings are messages."""
    first, second = tmp_path / "c1.csv", tmp_path / "c2.csv"
    first.write_text("lot,time,cars,spaces\nLotC,2016-10-04 08:00:00,10,100\n")
    second.write_text("lot,time,cars,spaces\nLotC,2016-10-05 08:00:00,12,100\n")
    columns = ["--columns", "lot=lot,time=time,occupied=cars,capacity=spaces"]
    assert run(["import-csv", str(first), *columns, "--timezone", "America/Chicago"], data_dir).exit_code == 0
    r = run(["import-csv", str(second), *columns, "--timezone", "Europe/London"], data_dir)
    assert r.exit_code == 1 and "lot LotC is in America/Chicago" in r.output and "nothing was imported" in r.output
    assert run(["import-csv", str(second), *columns], data_dir).exit_code == 0  # the lot's own timezone
    from zoneinfo import ZoneInfo

    from parking_core.store.sqlite import SQLiteStore

    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    lot = store.get_lot("LotC")
    stored = store.query_readings("LotC", datetime(2016, 10, 1, tzinfo=UTC), datetime(2016, 10, 9, tzinfo=UTC))
    times = [r.observed_at.astimezone(ZoneInfo(lot.timezone)).strftime("%m-%d %H:%M") for r in stored]
    store.close()
    assert times == ["10-04 08:00", "10-05 08:00"]

    r = run(["import-csv", str(first), *columns, "--timezone", "Europe/Lndon"], data_dir)
    assert r.exit_code == 1 and "unknown IANA timezone 'Europe/Lndon'" in r.output
    r = run(["import-csv", str(first), *columns, "--step-minutes", "7"], data_dir)
    assert r.exit_code == 1 and "must divide a day" in r.output
    r = run(["train", "--architectures", "gbm,tft"], data_dir)
    assert r.exit_code == 1 and "Error:" in r.output and "Traceback" not in r.output
    monkeypatch.setenv("PARKCAST_LOG_LEVEL", "verbose")
    r = run(["lots"], data_dir)
    assert r.exit_code == 1 and "bad settings: PARKCAST_LOG_LEVEL" in r.output
