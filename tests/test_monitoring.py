"""The scheduled health checks: silent car parks (SQLite and DynamoDB-on-moto, one suite),
the drift flag from the last pipeline run, and the system_monitor Lambda's metrics."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from conftest import T0, make_lot, make_reading
from test_lambdas import Context, load_handler

from parking_core.contracts import Lot
from parking_core.monitoring import drift_detected, is_open, stale_lots
from parking_core.objectstore import ObjectStore
from parking_core.status import LAST_RUN_KEY


@pytest.fixture
def lots(store):
    store.put_lot(make_lot("QUIET"))
    store.put_lot(make_lot("BUSY"))
    store.put_lot(make_lot("NEVER"))
    store.put_readings([make_reading(0, lot_id="QUIET")])  # T0
    store.put_readings([make_reading(0, lot_id="BUSY", observed_at=T0 + timedelta(minutes=50))])
    return store


def test_stale_lots_names_the_silent_and_the_never_heard(lots):
    now = T0 + timedelta(minutes=60)
    stale = {s.lot_id: s.last_reading_at for s in stale_lots(lots, now, 30)}
    assert stale == {"QUIET": T0, "NEVER": None}
    # A longer tolerance forgives QUIET; a lot that never reported stays stale.
    assert [s.lot_id for s in stale_lots(lots, now, 90)] == ["NEVER"]


def test_a_reading_exactly_at_the_window_edge_is_not_stale(lots):
    assert "QUIET" not in {s.lot_id for s in stale_lots(lots, T0 + timedelta(minutes=30), 30)}


def test_closed_car_parks_are_quiet_not_stale(store):
    # T0 is 09:00 in London (BST); the car park opens 08:00-16:30 local time.
    store.put_lot(Lot(lot_id="SHOP", name="Shop", capacity=10, timezone="Europe/London",
                      opens_at="08:00", closes_at="16:30"))
    store.put_readings([make_reading(0, lot_id="SHOP")])
    assert stale_lots(store, T0 + timedelta(hours=10), 30) == []  # 19:00: closed
    assert stale_lots(store, T0 - timedelta(minutes=50), 30) == []  # 08:10: opened 10 minutes ago
    assert [s.lot_id for s in stale_lots(store, T0 + timedelta(hours=2), 30)] == ["SHOP"]


def test_opening_hours_across_midnight():
    lot = Lot(lot_id="NIGHT", name="Night", capacity=10, timezone="UTC", opens_at="22:00", closes_at="02:00")
    assert is_open(lot, T0.replace(hour=23)) and is_open(lot, T0.replace(hour=1))
    assert not is_open(lot, T0.replace(hour=12))


@pytest.mark.parametrize("now, minutes", [(T0.replace(tzinfo=None), 30), (T0, 0)])
def test_bad_arguments_are_refused(sqlite_store, now, minutes):
    with pytest.raises(ValueError):
        stale_lots(sqlite_store, now, minutes)


def test_drift_detected_reads_the_last_runs_report(tmp_path):
    objects = ObjectStore((tmp_path / "objects").as_uri())
    assert drift_detected(objects) is None  # no pipeline run yet
    objects.put_json(LAST_RUN_KEY, {"run_id": "r1", "drift_report": None})
    assert drift_detected(objects) is None  # a run without a report (no new days)
    objects.put_json("drift/2016-11-21/report.json", {"drift": True, "p_value": 0.001})
    objects.put_json(LAST_RUN_KEY, {"run_id": "r2", "drift_report": "drift/2016-11-21/report.json"})
    assert drift_detected(objects) is True
    objects.put_json("drift/2016-11-22/report.json", {"drift": False, "p_value": 0.4})
    objects.put_json(LAST_RUN_KEY, {"run_id": "r3", "drift_report": "drift/2016-11-22/report.json"})
    assert drift_detected(objects) is False  # the last run's report, not any report that said drift


@pytest.fixture
def monitored_aws(monkeypatch):
    """moto's server on loopback (s3fs needs a real endpoint), PARKCAST_* as the stack sets them."""
    import s3fs
    from moto.server import ThreadedMotoServer

    from parkcast.processes import free_port
    from parking_core.aws.runtime import runtime
    from parking_core.store.dynamodb import DynamoDBStore

    s3fs.S3FileSystem.clear_instance_cache()  # an earlier test's filesystem points at its own (gone) server
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for k, v in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "PARKCAST_STORE": "dynamodb",
                 "PARKCAST_DYNAMODB_TABLE_PREFIX": "mon", "PARKCAST_OBJECT_STORE_URL": "s3://parkcast-monitor/parkcast",
                 "PARKCAST_AWS_REGION": "eu-west-2", "PARKCAST_STALE_LOT_MINUTES": "45"}.items():
        monkeypatch.setenv(k, v)
    runtime.cache_clear()
    boto3.client("s3", region_name="eu-west-2").create_bucket(
        Bucket="parkcast-monitor", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    store = DynamoDBStore(table_prefix="mon", region="eu-west-2")
    store.create_tables()
    yield store
    runtime.cache_clear()
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_system_monitor_lambda_publishes_the_metrics(monitored_aws, monkeypatch, capsys):
    from parking_core.aws.runtime import runtime

    monitored_aws.put_lot(make_lot("QUIET"))
    monitored_aws.put_readings([make_reading(0, lot_id="QUIET")])
    event = {"detail-type": "Scheduled Event", "source": "aws.scheduler",
             "time": (T0 + timedelta(minutes=60)).isoformat().replace("+00:00", "Z")}
    monitor = load_handler("system_monitor")
    result = monitor.handler(event, Context())
    assert result["stale"] == [{"lot_id": "QUIET", "last_reading_at": T0.isoformat()}]
    assert result["drift"] is None
    # 60 minutes of silence is within a 90-minute tolerance; the last pipeline run found drift.
    monkeypatch.setenv("PARKCAST_STALE_LOT_MINUTES", "90")
    runtime.cache_clear()
    objects = runtime().objects
    objects.put_json("drift/2016-10-03/report.json", {"drift": True})
    objects.put_json(LAST_RUN_KEY, {"run_id": "r1", "drift_report": "drift/2016-10-03/report.json"})
    assert monitor.handler(event, Context()) == {"at": event["time"].replace("Z", "+00:00"), "stale": [],
                                                 "drift": True}
    # The EMF blobs Powertools printed: the alarm's metric, in the namespace the stack watches.
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [blob["StaleLots"] for blob in emf] == [[1.0], [0.0]]
    assert [blob.get("DriftDetected") for blob in emf] == [None, [1.0]]
    assert {blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] for blob in emf} == {"parkcast"}
    # A later run without drift: the metric goes back to 0.
    objects.put_json("drift/2016-10-04/report.json", {"drift": False})
    objects.put_json(LAST_RUN_KEY, {"run_id": "r2", "drift_report": "drift/2016-10-04/report.json"})
    assert monitor.handler(event, Context())["drift"] is False
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [blob.get("DriftDetected") for blob in emf] == [[0.0]]
