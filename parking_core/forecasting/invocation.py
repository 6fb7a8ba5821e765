"""The forecast endpoint's contract: the body of SageMaker's POST /invocations and its answer.

The caller (API route or Lambda) owns the store, so it sends each lot with its recent history
(columns, epoch seconds: 35 days of a 30-minute lot is ~30 KB, well under the serverless
endpoint's 4 MB payload limit for 30 lots); the endpoint only runs the model. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from parking_core.contracts import Forecast, Lot, Reading

HISTORY_DAYS = 35  # days the served window is built from: encoder, two weeks of lags, imputation chain
MAX_INSTANCES = 100
MAX_HISTORY = 20_000  # readings per lot; 35 days at one per minute fits


class InvocationError(ValueError):
    """Bad request body: the container answers 400 with this message."""


class History(BaseModel):
    model_config = ConfigDict(extra="forbid")
    observed_at: list[int] = Field(max_length=MAX_HISTORY, description="epoch seconds (UTC)")
    occupied: list[int] = Field(max_length=MAX_HISTORY)
    capacity: list[int] = Field(max_length=MAX_HISTORY)

    @model_validator(mode="after")
    def _same_length(self) -> History:
        if not len(self.observed_at) == len(self.occupied) == len(self.capacity):
            raise ValueError("observed_at, occupied and capacity must have the same length")
        if any(c <= 0 for c in self.capacity) or any(o < 0 for o in self.occupied):
            raise ValueError("capacity must be > 0 and occupied >= 0")
        return self


class Instance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lot: Lot
    at: datetime
    history: History

    @model_validator(mode="after")
    def _aware(self) -> Instance:
        if self.at.tzinfo is None:
            raise ValueError("at needs a UTC offset")
        return self


class InvocationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[Instance] = Field(min_length=1, max_length=MAX_INSTANCES)


def recent_readings(store, lot_id: str, at: datetime) -> list[Reading]:
    """What a forecast at `at` needs from the store: HISTORY_DAYS (plus the origin's own,
    partial day) up to and including `at`."""
    return store.query_readings(lot_id, at - timedelta(days=HISTORY_DAYS + 1), at + timedelta(microseconds=1))


def build_instance(lot: Lot, readings: Sequence[Reading], at: datetime) -> dict[str, Any]:
    return {
        "lot": lot.model_dump(mode="json"),
        "at": at.isoformat(),
        "history": {
            "observed_at": [int(r.observed_at.timestamp()) for r in readings],
            "occupied": [r.occupied for r in readings],
            "capacity": [r.capacity for r in readings],
        },
    }


def parse_request(body: bytes | str | dict) -> InvocationRequest:
    try:
        payload = json.loads(body) if isinstance(body, bytes | str) else body
        return InvocationRequest.model_validate(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvocationError(f"body is not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvocationError(f"{where}: {first['msg']}") from None


def parse_response(body: bytes | str) -> list[Forecast]:
    payload = json.loads(body)
    return [Forecast.model_validate(f) for f in payload["forecasts"]]
