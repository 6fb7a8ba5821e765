"""One contract suite, run against SQLite (on disk) and DynamoDB (moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import T0, make_lot, make_reading

from parking_core.contracts import Device, Forecast, ForecastStep, SlotState
from parking_core.store import ConflictError, DeviceExistsError, NotFoundError, hash_api_key


@pytest.fixture
def lot_store(store):
    store.put_lot(make_lot("LOT-A"))
    store.put_lot(make_lot("LOT-B", capacity=50))
    return store


def test_lots_roundtrip(lot_store):
    assert [lot.lot_id for lot in lot_store.list_lots()] == ["LOT-A", "LOT-B"]
    assert lot_store.get_lot("LOT-B").capacity == 50
    assert lot_store.get_lot("nope") is None


def test_put_is_idempotent(lot_store):
    readings = [make_reading(i) for i in range(3)]
    assert lot_store.put_readings(readings) == ["created"] * 3
    assert lot_store.put_readings(readings) == ["duplicate"] * 3
    assert lot_store.count_readings("LOT-A") == 3


def test_same_key_in_one_batch_is_a_duplicate(lot_store):
    r = make_reading(0)
    assert lot_store.put_readings([r, r]) == ["created", "duplicate"]
    assert lot_store.count_readings() == 1


def test_conflicting_batch_stores_nothing(lot_store):
    lot_store.put_readings([make_reading(0, occupied=10)])
    batch = [make_reading(1), make_reading(0, occupied=11), make_reading(2)]
    with pytest.raises(ConflictError) as err:
        lot_store.put_readings(batch)
    assert err.value.conflicts == [1]
    assert lot_store.count_readings() == 1
    assert lot_store.latest_reading("LOT-A").occupied == 10


def test_conflict_inside_one_batch(lot_store):
    with pytest.raises(ConflictError):
        lot_store.put_readings([make_reading(0, occupied=1), make_reading(0, occupied=2)])
    assert lot_store.count_readings() == 0


def test_other_device_same_time_is_a_separate_reading(lot_store):
    lot_store.put_readings([make_reading(0, device_id="cam-1"), make_reading(0, device_id="cam-2")])
    assert lot_store.count_readings("LOT-A") == 2


def test_range_query_is_half_open_and_ordered(lot_store):
    lot_store.put_readings([make_reading(i) for i in reversed(range(10))])
    got = lot_store.query_readings("LOT-A", T0 + timedelta(minutes=60), T0 + timedelta(minutes=180))
    assert [r.observed_at for r in got] == [T0 + timedelta(minutes=m) for m in (60, 90, 120, 150)]
    assert len(lot_store.query_readings("LOT-A", T0, T0 + timedelta(days=1), limit=3)) == 3
    assert lot_store.query_readings("LOT-B", T0, T0 + timedelta(days=1)) == []


def test_offsets_are_normalised_to_utc(lot_store):
    local = datetime(2016, 10, 4, 9, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/London"))
    lot_store.put_readings([make_reading(observed_at=local)])
    (stored,) = lot_store.query_readings("LOT-A", T0, T0 + timedelta(days=1))
    assert stored.observed_at == local and stored.observed_at.utcoffset() == timedelta(0)


def test_latest_reading_and_slots_roundtrip(lot_store):
    slots = (SlotState(slot_id="s1", occupied=True, confidence=0.9), SlotState(slot_id="s2", occupied=False))
    lot_store.put_readings([make_reading(0), make_reading(5, occupied=1, capacity=2, slots=slots), make_reading(3)])
    latest = lot_store.latest_reading("LOT-A")
    assert latest.observed_at == T0 + timedelta(minutes=150)
    assert latest.slots == slots
    assert lot_store.latest_reading("LOT-B") is None


def _forecast(issued: datetime, version: str = "v1") -> Forecast:
    steps = tuple(
        ForecastStep(target_time=issued + timedelta(minutes=30 * (h + 1)), p10=0.1, p50=0.2, p90=0.3, prob_free=0.99)
        for h in range(4)
    )
    return Forecast(lot_id="LOT-A", issued_at=issued, model_version=version, steps=steps)


def test_forecasts(lot_store):
    lot_store.put_forecast(_forecast(T0))
    lot_store.put_forecast(_forecast(T0 + timedelta(hours=1), "v2"))
    lot_store.put_forecast(_forecast(T0 + timedelta(hours=1), "v3"))  # same key replaces
    assert lot_store.latest_forecast("LOT-A").model_version == "v3"
    assert [f.model_version for f in lot_store.query_forecasts("LOT-A", T0, T0 + timedelta(hours=1))] == ["v1"]
    assert lot_store.latest_forecast("LOT-B") is None


def test_devices(lot_store):
    now = datetime.now(UTC).replace(microsecond=0)
    lot_store.add_device(Device(device_id="cam-1", lot_id="LOT-A", created_at=now), hash_api_key("secret"))
    with pytest.raises(DeviceExistsError):
        lot_store.add_device(Device(device_id="cam-1", lot_id="LOT-B", created_at=now), hash_api_key("other"))
    assert lot_store.device_for_key_hash(hash_api_key("secret")).device_id == "cam-1"
    assert lot_store.device_for_key_hash(hash_api_key("wrong")) is None
    revoked = lot_store.revoke_device("cam-1", now)
    assert not revoked.active
    assert not lot_store.device_for_key_hash(hash_api_key("secret")).active
    assert [d.device_id for d in lot_store.list_devices()] == ["cam-1"]
    with pytest.raises(NotFoundError):
        lot_store.revoke_device("ghost", now)
