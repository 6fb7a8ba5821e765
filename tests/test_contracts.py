from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SAMPLE_CSV, T0
from pydantic import ValidationError

from parking_core.contracts import Forecast, ForecastStep, Lot, Reading, SlotState, max_occupied

BASE = {"lot_id": "Broad Street", "device_id": "cam-1", "observed_at": "2016-10-04T08:00:00+01:00",
        "capacity": 100, "occupied": 40}


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_reading_normalises_to_utc_and_keeps_real_ids():
    r = Reading(**BASE)
    assert r.observed_at == datetime(2016, 10, 4, 7, 0, tzinfo=UTC)
    assert r.lot_id == "Broad Street"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"observed_at": "2016-10-04T08:00:00"}, "observed_at"),  # naive
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"occupied": -1}, "occupied"),
        ({"occupied": 111}, "occupied"),  # beyond tolerance
        ({"capacity": 0}, "capacity"),
        ({"lot_id": ""}, "lot_id"),
        ({"lot_id": "a/b"}, "lot_id"),
        ({"device_id": "x" * 65}, "device_id"),
        ({"extra": 1}, "extra"),
    ],
)
def test_reading_rejections_name_the_field(change, field):
    with pytest.raises(ValidationError) as err:
        Reading(**{**BASE, **change})
    assert field in error_fields(err.value)


def test_tolerance_allows_real_overshoot():
    # Every over-capacity row of the real Birmingham file (counters overshoot: up to 1.041x) is a
    # valid reading as reported, and the boundary sits exactly at max_occupied.
    with SAMPLE_CSV.open() as f:
        over = [row for row in csv.DictReader(f) if int(row["Occupancy"]) > int(row["Capacity"])]
    assert len(over) > 10 and max(int(r["Occupancy"]) / int(r["Capacity"]) for r in over) > 1.04
    for row in over:
        reading = Reading(**{**BASE, "capacity": int(row["Capacity"]), "occupied": int(row["Occupancy"])})
        assert reading.occupied == int(row["Occupancy"])
    for capacity, highest in ((100, 110), (577, 634), (1920, 2112)):  # 10 %, rounded down
        assert max_occupied(capacity) == highest and Reading(**{**BASE, "capacity": capacity, "occupied": highest})
        with pytest.raises(ValidationError) as err:
            Reading(**{**BASE, "capacity": capacity, "occupied": highest + 1})
        assert "occupied" in error_fields(err.value) and "above capacity" in str(err.value)


def test_slots_must_agree_with_count():
    slots = [{"slot_id": "1", "occupied": True}, {"slot_id": "2", "occupied": False}]
    Reading(**{**BASE, "capacity": 2, "occupied": 1, "slots": slots})
    with pytest.raises(ValidationError) as err:
        Reading(**{**BASE, "capacity": 2, "occupied": 2, "slots": slots})
    assert "slots" in error_fields(err.value)
    with pytest.raises(ValidationError):
        Reading(**{**BASE, "capacity": 2, "occupied": 2, "slots": [slots[0], slots[0]]})
    with pytest.raises(ValidationError):
        SlotState(slot_id="1", occupied=True, confidence=1.5)


def test_lot_rules():
    Lot(lot_id="L", name="L", capacity=10, timezone="Europe/London", grid_step_minutes=30)
    for bad in ({"timezone": "Mars/Olympus"}, {"grid_step_minutes": 7}, {"capacity": 0}, {"opens_at": "25:00"}):
        with pytest.raises(ValidationError) as err:
            Lot(**{"lot_id": "L", "name": "L", "capacity": 10, **bad})
        assert next(iter(bad)) in error_fields(err.value)


def _step(h: int, **kw) -> dict:
    return {"target_time": T0 + timedelta(minutes=30 * h), "p10": 0.1, "p50": 0.2, "p90": 0.3, "prob_free": 0.9} | kw


def test_forecast_rules():
    f = Forecast(lot_id="L", issued_at=T0, model_version="v1", steps=[_step(1), _step(2)])
    assert f.source == "model"
    with pytest.raises(ValidationError) as err:
        ForecastStep(**_step(1, p50=0.05))
    assert "p50" in error_fields(err.value)
    with pytest.raises(ValidationError) as err:
        Forecast(lot_id="L", issued_at=T0, model_version="v1", steps=[_step(2), _step(1)])
    assert "steps" in error_fields(err.value)
    with pytest.raises(ValidationError):
        Forecast(lot_id="L", issued_at=T0, model_version="v1", steps=[])
    with pytest.raises(ValidationError):
        ForecastStep(**_step(1, prob_free=1.2))
