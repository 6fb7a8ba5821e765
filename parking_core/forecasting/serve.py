"""Forecast one lot now (or at a given time) from the store's history with a model package.

Torch-free: the same function answers `parkcast forecast`, the serving container and the
Lambda flow. A lot with too little history gets a baseline forecast flagged in `source`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from parking_core.contracts import Forecast, ForecastStep, Lot
from parking_core.forecasting.grid import GridSpec, nearest_slot, readings_to_cube
from parking_core.forecasting.package import ModelPackage, OnnxForecaster
from parking_core.forecasting.windows import prob_free, request_at, slot_datetime, target_positions
from parking_core.store import ReadingStore

HISTORY_DAYS = 35  # encoder days + two weeks of lags + imputation chain, with margin


def origin_slot(local: datetime, spec: GridSpec) -> tuple[int, int]:
    """(day offset relative to local's date, open-slot index) of the forecast origin: the grid
    point nearest to `local`; after closing the day's last slot, before opening the day before's."""
    minutes = int(nearest_slot(pd.Series([local.hour * 60 + local.minute + local.second / 60]).to_numpy(),
                               spec.step_minutes)[0])
    open_slots = spec.open_slots
    if minutes < open_slots[0]:
        return -1, len(open_slots) - 1
    index = max(i for i, s in enumerate(open_slots) if s <= minutes)
    return 0, index


def readings_frame(readings) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.lot_id, r.observed_at, r.occupied, r.capacity) for r in readings],
        columns=["lot_id", "observed_at", "occupied", "capacity"],
    )


def forecast_from_history(
    lot: Lot,
    history: pd.DataFrame,
    at: datetime,
    package: ModelPackage,
    forecaster: OnnxForecaster,
) -> Forecast:
    spec = package.grid
    zone = ZoneInfo(lot.timezone)
    local = at.astimezone(zone).replace(tzinfo=None)
    day_offset, slot = origin_slot(local, spec)
    last_day = local.date() + timedelta(days=day_offset)
    first_day = last_day - timedelta(days=HISTORY_DAYS)
    cube = readings_to_cube(
        history, lot.timezone, spec.step_minutes, spec=spec, lots=[lot.lot_id],
        first_day=first_day, last_day=last_day, capacity={lot.lot_id: float(lot.capacity)},
    )
    request = request_at(lot.lot_id, float(lot.capacity), cube.days, cube.rate[0], len(cube.days) - 1, slot,
                         forecaster.horizon)
    quantiles = forecaster.predict([request])[0]
    chance_free = prob_free(quantiles, float(lot.capacity))
    steps = []
    for (day, minutes), q, pf in zip(target_positions(request, spec, forecaster.horizon), quantiles, chance_free,
                                     strict=True):
        when = slot_datetime(day, minutes).replace(tzinfo=zone).astimezone(UTC)
        steps.append(ForecastStep(target_time=when, p10=float(q[0]), p50=float(q[1]), p90=float(q[2]),
                                  prob_free=float(pf)))
    return Forecast(
        lot_id=lot.lot_id,
        issued_at=at,
        model_version=package.version,
        source=forecaster.sources[0],
        steps=tuple(steps),
    )


def forecast_lot(
    store: ReadingStore, lot_id: str, package: ModelPackage, forecaster: OnnxForecaster,
    at: datetime | None = None,
) -> Forecast:
    lot = store.get_lot(lot_id)
    if lot is None:
        raise KeyError(lot_id)
    at = at or datetime.now(UTC)
    start = at - timedelta(days=HISTORY_DAYS + 1)
    readings = store.query_readings(lot_id, start, at + timedelta(microseconds=1))
    return forecast_from_history(lot, readings_frame(readings), at, package, forecaster)
