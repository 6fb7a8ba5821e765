"""The Dagster code location: daily_readings materialized in-process with its checks,
and `dagster dev` serving the graph over GraphQL on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date

import dagster as dg
import httpx
import pytest
from conftest import REPO, make_lot, make_reading

from parkcast.processes import free_port
from parking_assets.export_assets import (
    daily_readings,
    exported_keys_unique,
    exported_row_counts_match_store,
)
from parking_assets.resources import ParkcastResource
from parking_core.store.sqlite import SQLiteStore


@pytest.fixture
def resource(data_dir):
    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    store.put_readings([make_reading(i * 4) for i in range(20)])
    store.close()
    return ParkcastResource(data_dir=str(data_dir))


def test_daily_readings_partition_and_checks(resource):
    result = dg.materialize(
        [daily_readings], resources={"parkcast": resource}, partition_key="2016-10-04",
        selection=[daily_readings],
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("daily_readings")
    assert mat.metadata["readings"].value == 8 and mat.metadata["rewritten"].value == 2
    # Idempotent: the rerun rewrites nothing.
    again = dg.materialize([daily_readings], resources={"parkcast": resource}, partition_key="2016-10-04")
    assert again.asset_materializations_for_node("daily_readings")[0].metadata["rewritten"].value == 0

    checks = dg.materialize(
        [daily_readings, exported_row_counts_match_store, exported_keys_unique],
        resources={"parkcast": resource}, partition_key="2016-10-05",
    )
    evaluations = {e.check_name: e.passed for e in checks.get_asset_check_evaluations()}
    assert evaluations == {"exported_row_counts_match_store": True, "exported_keys_unique": True}


def test_row_count_check_fails_when_the_store_changed(resource):
    dg.materialize([daily_readings], resources={"parkcast": resource}, partition_key="2016-10-04")
    store = SQLiteStore(resource.settings.sqlite_path)
    store.put_readings([make_reading(1, device_id="late-cam")])  # arrives after the export
    store.close()
    result = dg.materialize(
        [daily_readings, exported_row_counts_match_store], resources={"parkcast": resource},
        partition_key="2016-10-05",
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["mismatches"].value == {"2016-10-04": {"exported": 8, "store": 9}}


def test_definitions_load():
    from parking_assets.definitions import defs

    assert defs.resolve_job_def("daily_export") is not None
    assert {s.name for s in defs.schedules} == {"daily_export_schedule", "daily_pipeline_schedule"}
    assert {s.name for s in defs.sensors} == {"approved_versions_sensor"}
    assert defs.resolve_job_def("daily_pipeline") is not None and defs.resolve_job_def("promotion_job") is not None
    assert date(2016, 10, 4).isoformat() in defs.get_assets_def("daily_readings").partitions_def.get_partition_keys(
        current_time=None
    )[:1]


def test_dagster_dev_serves_the_graph(tmp_path):
    port = free_port()
    env = {**os.environ, "PARKCAST_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), signal.signal(signal.SIGTERM, signal.SIG_DFL),
                            os.setsid()),
    )
    try:
        query = {"query": "{ assetNodes { assetKey { path } } }"}
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "dagster dev exited"
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=5)
                if r.status_code == 200 and r.json().get("data"):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "dagster dev did not answer in time"
            time.sleep(1)
        keys = {"/".join(n["assetKey"]["path"]) for n in r.json()["data"]["assetNodes"]}
        assert {"daily_readings", "drift_report", "retrain_decision", "consolidated_dataset", "forecaster",
                "registered_model", "model_evaluation"} <= keys
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_key_check_fails_on_a_partition_holding_a_reading_twice(resource):
    """A partition written by something other than the export (a manual copy, a bad merge) that
    holds one key twice fails the check, and the metadata says which day and how many."""
    import io

    import polars as pl

    from parking_core.export import partition_key, read_partition

    dg.materialize([daily_readings], resources={"parkcast": resource}, partition_key="2016-10-04")
    objects = resource.objects()
    day = date(2016, 10, 4)
    frame = read_partition(objects, "readings", day)
    buf = io.BytesIO()
    pl.concat([frame, frame.head(3)]).write_parquet(buf)
    objects.put_bytes(partition_key("readings", day), buf.getvalue())
    result = dg.materialize([daily_readings, exported_keys_unique], resources={"parkcast": resource},
                            partition_key="2016-10-05")  # exports the next day; the check reads every day
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["duplicates"].value == {"2016-10-04": 3}
