"""Daily export: layout, idempotency, counts, on a folder and on S3 (moto server)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import T0, make_lot, make_reading

from parking_core.contracts import Forecast, ForecastStep
from parking_core.export import export_day, exported_days, partition_key, read_partition
from parking_core.objectstore import ObjectStore


@pytest.fixture
def filled(store):
    store.put_lot(make_lot("LOT-A"))
    store.put_lot(make_lot("LOT-B"))
    # 20 readings every 2 h from 2016-10-04 08:00Z: 8 on the 4th, 12 on the 5th.
    store.put_readings([make_reading(i * 4) for i in range(20)])
    store.put_readings([make_reading(i, lot_id="LOT-B") for i in range(3)])
    steps = tuple(
        ForecastStep(target_time=T0 + timedelta(minutes=30 * (h + 1)), p10=0.1, p50=0.2, p90=0.3, prob_free=0.9)
        for h in range(8)
    )
    store.put_forecast(Forecast(lot_id="LOT-A", issued_at=T0, model_version="v1", steps=steps))
    return store


def test_export_layout_counts_and_idempotency(filled, tmp_path):
    objects = ObjectStore(tmp_path.as_uri() + "/objects")
    day = date(2016, 10, 4)
    result = export_day(filled, objects, day)
    assert (result.readings, result.forecasts) == (8 + 3, 8)
    assert set(result.written) == {partition_key("readings", day), partition_key("forecasts", day)}
    frame = read_partition(objects, "readings", day)
    assert frame.columns == ["lot_id", "device_id", "observed_at", "capacity", "occupied", "slots"]
    assert str(frame["observed_at"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    start = datetime(2016, 10, 4, tzinfo=UTC)
    stored = {(r.lot_id, r.device_id, r.observed_at, r.capacity, r.occupied)
              for lot in ("LOT-A", "LOT-B") for r in filled.query_readings(lot, start, start + timedelta(days=1))}
    exported = set(frame.select(["lot_id", "device_id", "observed_at", "capacity", "occupied"]).iter_rows())
    assert exported == stored and len(stored) == 11  # the day's readings, value for value
    before = objects.get_bytes(partition_key("readings", day))
    again = export_day(filled, objects, day)
    assert again.written == [] and objects.get_bytes(partition_key("readings", day)) == before
    # New data for that day -> the partition is rewritten.
    filled.put_readings([make_reading(1, lot_id="LOT-B", occupied=3, device_id="cam-9")])
    assert export_day(filled, objects, day).written == [partition_key("readings", day)]
    assert export_day(filled, objects, date(2016, 10, 5)).readings == 12
    assert exported_days(objects) == [date(2016, 10, 4), date(2016, 10, 5)]


def test_export_to_s3(sqlite_store, tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer

    from parkcast.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="exports")
        objects = ObjectStore("s3://exports/parkcast", client_kwargs={"endpoint_url": endpoint},
                              skip_instance_cache=True)
        sqlite_store.put_lot(make_lot("LOT-A"))
        sqlite_store.put_readings([make_reading(i) for i in range(5)])
        result = export_day(sqlite_store, objects, date(2016, 10, 4))
        assert result.readings == 5 and read_partition(objects, "readings", date(2016, 10, 4)).height == 5
        assert export_day(sqlite_store, objects, date(2016, 10, 4)).written == []
    finally:
        server.stop()
