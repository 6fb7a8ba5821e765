"""The real-time flow behind POST /v1/readings and the run-prediction-trigger Lambda: store the
readings, then ask the forecast endpoint about each lot that got new ones and store the answer.
The readings are stored first and stay stored whatever the endpoint does."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from parking_core import service
from parking_core.contracts import Device
from parking_core.forecasting.invocation import build_instance, recent_readings
from parking_core.predictor import Predictor, PredictorUnavailable
from parking_core.store import Store


def request_forecasts(store: Store, predictor: Predictor, origins: Iterable[tuple[str, datetime]]) -> list[dict]:
    """One entry per lot: {"lot_id", "status": "ok", "forecast"} or {"status": "unavailable", "reason"}."""
    origins = list(origins)
    instances = []
    for lot_id, at in origins:
        lot = service.get_lot(store, lot_id)
        instances.append(build_instance(lot, recent_readings(store, lot_id, at), at))
    if not instances:
        return []
    try:
        forecasts = predictor.predict({"instances": instances})
        if [f.lot_id for f in forecasts] != [lot_id for lot_id, _ in origins]:
            raise PredictorUnavailable("endpoint answered for other lots than asked")
    except PredictorUnavailable as exc:
        return [{"lot_id": lot_id, "status": "unavailable", "reason": str(exc)[:300]} for lot_id, _ in origins]
    for forecast in forecasts:
        store.put_forecast(forecast)
    return [{"lot_id": f.lot_id, "status": "ok", "forecast": f.model_dump(mode="json")} for f in forecasts]


def ingest_and_forecast(
    store: Store,
    predictor: Predictor | None,
    payload: Any,
    device: Device | None,
    max_clock_skew: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> tuple[service.IngestResult, dict[str, Any]]:
    """Ingest (all-or-nothing), then forecast from each lot's newest new reading."""
    result = service.ingest_readings(store, payload, device, max_clock_skew=max_clock_skew, now=now)
    body = result.to_dict()
    if predictor is not None:
        newest: dict[str, datetime] = {}
        for reading, outcome in zip(result.readings, result.outcomes, strict=True):
            if outcome == "created":
                newest[reading.lot_id] = max(reading.observed_at, newest.get(reading.lot_id, reading.observed_at))
        body["forecasts"] = request_forecasts(store, predictor, sorted(newest.items()))
    return result, body
