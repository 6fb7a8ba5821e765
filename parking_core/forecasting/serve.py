"""Forecast one lot now (or at a given time) from the store's history with a model package.

Torch-free: the same function answers `parkcast forecast`, the serving container and the
Lambda flow. A lot with too little history gets a baseline forecast flagged in `source`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from parking_core.contracts import Forecast, ForecastStep, Lot
from parking_core.forecasting.grid import GridSpec, lot_rates, nearest_slot
from parking_core.forecasting.invocation import HISTORY_DAYS, parse_request, recent_readings
from parking_core.forecasting.package import ModelPackage, OnnxForecaster
from parking_core.forecasting.windows import prob_free, request_at, slot_datetime, target_positions
from parking_core.store import ReadingStore


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


@dataclass
class History:
    """One lot's readings as arrays: what the serving hot path works on."""

    epoch_ns: np.ndarray
    occupied: np.ndarray
    capacity: np.ndarray

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> History:
        at = pd.to_datetime(frame["observed_at"], utc=True)
        return cls(at.astype("int64").to_numpy(), frame["occupied"].to_numpy(float), frame["capacity"].to_numpy(float))

    @classmethod
    def of_epoch_seconds(cls, epoch_s, occupied, capacity) -> History:
        return cls(np.asarray(epoch_s, dtype="int64") * 1_000_000_000, np.asarray(occupied, dtype=float),
                   np.asarray(capacity, dtype=float))


def forecasts_from_histories(
    items: Sequence[tuple[Lot, History, datetime]],
    package: ModelPackage,
    forecaster: OnnxForecaster,
) -> list[Forecast]:
    """One forecast per (lot, history, origin), all lots through the network in one batch."""
    spec = package.grid
    requests, zones = [], []
    for lot, history, at in items:
        zone = ZoneInfo(lot.timezone)
        local = at.astimezone(zone).replace(tzinfo=None)
        day_offset, slot = origin_slot(local, spec)
        last_day = local.date() + timedelta(days=day_offset)
        first_day = last_day - timedelta(days=HISTORY_DAYS)
        rate = lot_rates(history.epoch_ns, history.occupied, history.capacity, lot.timezone, spec, first_day, last_day)
        days = [first_day + timedelta(days=i) for i in range(len(rate))]
        requests.append(request_at(lot.lot_id, float(lot.capacity), days, rate, len(days) - 1, slot,
                                   forecaster.horizon))
        zones.append(zone)
    quantiles = forecaster.predict(requests) if requests else []
    out = []
    for (lot, _, at), request, zone, q, source in zip(items, requests, zones, quantiles, forecaster.sources,
                                                       strict=True):
        steps = []
        for (day, minutes), qs, pf in zip(target_positions(request, spec, forecaster.horizon), q,
                                          prob_free(q, float(lot.capacity)), strict=True):
            when = slot_datetime(day, minutes).replace(tzinfo=zone).astimezone(UTC)
            steps.append(ForecastStep(target_time=when, p10=float(qs[0]), p50=float(qs[1]), p90=float(qs[2]),
                                      prob_free=float(pf)))
        out.append(Forecast(lot_id=lot.lot_id, issued_at=at, model_version=package.version, source=source,
                            steps=tuple(steps)))
    return out


def forecast_from_history(
    lot: Lot,
    history: pd.DataFrame,
    at: datetime,
    package: ModelPackage,
    forecaster: OnnxForecaster,
) -> Forecast:
    return forecasts_from_histories([(lot, History.of_frame(history), at)], package, forecaster)[0]


def forecast_lot(
    store: ReadingStore, lot_id: str, package: ModelPackage, forecaster: OnnxForecaster,
    at: datetime | None = None,
) -> Forecast:
    lot = store.get_lot(lot_id)
    if lot is None:
        raise KeyError(lot_id)
    at = at or datetime.now(UTC)
    return forecast_from_history(lot, readings_frame(recent_readings(store, lot_id, at)), at, package, forecaster)


def invoke(package, forecaster, body: bytes | str | dict) -> dict[str, Any]:
    """What /invocations answers: the model version and one forecast per instance."""
    request = parse_request(body)
    items = [(i.lot, History.of_epoch_seconds(i.history.observed_at, i.history.occupied, i.history.capacity), i.at)
             for i in request.instances]
    forecasts = forecasts_from_histories(items, package, forecaster)
    return {"model_version": package.version, "forecasts": [f.model_dump(mode="json") for f in forecasts]}
