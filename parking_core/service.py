"""Use cases behind every adapter: the FastAPI routes, the Lambda handlers and the CLI
all call these functions, so validation and semantics are identical everywhere."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from parking_core.contracts import Device, Lot, PutOutcome, Reading, WireTime
from parking_core.store import ConflictError, DeviceInactive, Store, hash_api_key

MAX_BATCH = 100
MAX_RANGE = timedelta(days=62)
MAX_QUERY_ROWS = 20_000

_readings_adapter = TypeAdapter(list[Reading])
_time_adapter = TypeAdapter(WireTime)


@dataclass
class FieldError:
    field: str
    message: str


class ServiceError(Exception):
    """An error the caller can act on; adapters map `status` to HTTP codes."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: Sequence[FieldError] = (), retry_after_s: int | None = None):
        super().__init__(message)
        self.message = message
        self.fields = list(fields)
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, Any]:
        """The one error shape of every adapter: {"error": {"code", "message", "fields"}}."""
        fields = [{"field": f.field, "message": f.message} for f in self.fields]
        return {"error": {"code": self.code, "message": self.message, "fields": fields}}

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class InvalidInput(ServiceError):
    status = 422
    code = "validation_error"


class Unauthenticated(ServiceError):
    status = 401
    code = "unauthenticated"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"


class Unavailable(ServiceError):
    """The store cannot serve now; nothing was written. Retry later with the same keys."""

    status = 503
    code = "unavailable"


def unavailable(exc: Exception) -> Unavailable:
    return Unavailable(str(exc), retry_after_s=1)


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def invalid_from_pydantic(exc: ValidationError, prefix: tuple[Any, ...] = (), drop: int = 0) -> InvalidInput:
    """Field paths like readings[3].occupied; `drop` removes leading loc parts the caller never sent."""
    fields = [
        FieldError(_field_path(prefix + tuple(err["loc"])[drop:]), err["msg"].removeprefix("Value error, "))
        for err in exc.errors()
    ]
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    return InvalidInput(f"invalid reading: {summary}", fields)


MAX_BODY_BYTES = 1 << 20


def parse_json_body(body: bytes | str, max_bytes: int = MAX_BODY_BYTES) -> Any:
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes", [FieldError("body", "too large")])
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"body is not JSON: {exc}", [FieldError("body", "not JSON")]) from None
    except RecursionError:
        raise InvalidInput("body is JSON nested too deeply", [FieldError("body", "nested too deeply")]) from None


def parse_readings_payload(payload: Any) -> list[Reading]:
    """One reading as an object, or a batch as {"readings": [...]} or a bare list."""
    if isinstance(payload, dict) and "readings" in payload:
        if set(payload) != {"readings"}:
            extra = sorted(set(payload) - {"readings"})
            raise InvalidInput("unexpected fields beside readings", [FieldError(extra[0], "unexpected field")])
        items, prefix = payload["readings"], ("readings",)
    elif isinstance(payload, list):
        items, prefix = payload, ()
    elif isinstance(payload, dict):
        items, prefix = [payload], None
    else:
        raise InvalidInput("body must be a reading object or {\"readings\": [...]}", [FieldError("body", "wrong type")])
    if not isinstance(items, list) or not items:
        raise InvalidInput("readings must be a non-empty list", [FieldError("readings", "must be a non-empty list")])
    if len(items) > MAX_BATCH:
        raise InvalidInput(
            f"at most {MAX_BATCH} readings per request", [FieldError("readings", f"{len(items)} > {MAX_BATCH}")]
        )
    try:
        # Strict JSON types, as the OpenAPI document states them: "5" is not an integer, 1 not a boolean.
        return _readings_adapter.validate_json(json.dumps(items), strict=True)
    except ValidationError as exc:
        # A single object was wrapped in a list here: its index 0 means nothing to the caller.
        raise invalid_from_pydantic(exc, prefix or (), drop=1 if prefix is None else 0) from None


UNKNOWN_KEY = "unknown or revoked API key"


def authenticate(store: Store, api_key: str | None) -> Device:
    if not api_key:
        raise Unauthenticated("missing X-API-Key header")
    device = store.device_for_key_hash(hash_api_key(api_key))
    if device is None or not device.active:
        raise Unauthenticated(UNKNOWN_KEY)
    return device


@dataclass
class IngestResult:
    outcomes: list[PutOutcome] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)

    @property
    def created(self) -> int:
        return self.outcomes.count("created")

    @property
    def duplicates(self) -> int:
        return self.outcomes.count("duplicate")

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.created, "duplicates": self.duplicates, "results": self.outcomes}


def check_readings(
    store: Store,
    readings: Sequence[Reading],
    device: Device | None,
    now: datetime,
    max_clock_skew: timedelta,
    single: bool = False,
) -> None:
    """Rules that need the store or the clock; contract rules ran at parse time."""
    lots: dict[str, Lot | None] = {}
    for i, r in enumerate(readings):
        where = "" if single else f"readings[{i}]."
        # Ownership first: to a device, any lot but its own is forbidden, whether it exists or not.
        if device is not None and (r.lot_id != device.lot_id or r.device_id != device.device_id):
            raise Forbidden(
                f"device {device.device_id!r} may only write its own readings for lot {device.lot_id!r}",
                [FieldError(f"{where}lot_id" if r.lot_id != device.lot_id else f"{where}device_id", "not yours")],
            )
        if r.lot_id not in lots:
            lots[r.lot_id] = store.get_lot(r.lot_id)
        if lots[r.lot_id] is None:
            raise InvalidInput(f"unknown lot {r.lot_id!r}", [FieldError(f"{where}lot_id", "unknown lot")])
        if r.observed_at > now + max_clock_skew:
            raise InvalidInput(
                f"observed_at {r.observed_at.isoformat()} is in the future (device clock wrong?)",
                [FieldError(f"{where}observed_at", "in the future")],
            )


@dataclass
class ValidIngest:
    """Readings that passed every rule and may be stored as they are."""

    readings: list[Reading]
    single: bool

    def conflict(self, exc: ConflictError) -> Conflict:
        where = ["body"] if self.single else [f"readings[{i}]" for i in exc.conflicts]
        return Conflict(str(exc), [FieldError(w, "same key, different values") for w in where])


def validate_ingest(
    store: Store,
    payload: Any,
    device: Device | None,
    max_clock_skew: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> ValidIngest:
    """Every rule, before anything is stored."""
    readings = parse_readings_payload(payload)
    single = isinstance(payload, dict) and "readings" not in payload
    check_readings(store, readings, device, now or datetime.now(UTC), max_clock_skew, single)
    return ValidIngest(list(readings), single)


async def ingest_readings_async(
    store: Store,
    payload: Any,
    device: Device,
    max_clock_skew: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> IngestResult:
    """ingest_readings for an asyncio caller whose store writes asynchronously
    (put_readings_async) and re-checks the device inside the write: the caller may have
    authenticated it from a cache, and a device revoked since then stores nothing (401)."""
    valid = validate_ingest(store, payload, device, max_clock_skew, now)
    try:
        outcomes = await store.put_readings_async(valid.readings, device_id=device.device_id)
    except ConflictError as exc:
        raise valid.conflict(exc) from None
    except DeviceInactive:
        raise Unauthenticated(UNKNOWN_KEY) from None
    return IngestResult(outcomes, valid.readings)


def ingest_readings(
    store: Store,
    payload: Any,
    device: Device | None,
    max_clock_skew: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> IngestResult:
    """Validate everything first, then store all-or-nothing. Nothing is half-written."""
    valid = validate_ingest(store, payload, device, max_clock_skew, now)
    try:
        return IngestResult(store.put_readings(valid.readings), valid.readings)
    except ConflictError as exc:
        raise valid.conflict(exc) from None


# -- read side ---------------------------------------------------------------------------


def lot_summary(store: Store, lot: Lot) -> dict[str, Any]:
    latest = store.latest_reading(lot.lot_id)
    return {
        **lot.model_dump(),
        "latest": None
        if latest is None
        else {
            "observed_at": latest.observed_at.isoformat(),
            "device_id": latest.device_id,
            "occupied": latest.occupied,
            "capacity": latest.capacity,
            "occupancy_rate": round(latest.occupied / latest.capacity, 4),
        },
    }


def latest_forecast(store: Store, lot_id: str) -> dict[str, Any]:
    get_lot(store, lot_id)
    forecast = store.latest_forecast(lot_id)
    if forecast is None:
        raise NotFound(f"no forecast for lot {lot_id!r} yet", [FieldError("lot_id", "no forecast yet")])
    return forecast.model_dump(mode="json")


MAX_TREND_HOURS = 168


def forecast_summary(forecast) -> dict[str, Any] | None:
    """The overview's forecast cell: who forecast, when, and the first step ahead."""
    if forecast is None:
        return None
    first = forecast.steps[0]
    return {"model_version": forecast.model_version, "source": forecast.source,
            "issued_at": forecast.issued_at.isoformat(),
            "next": {"target_time": first.target_time.isoformat(), "p50": round(first.p50, 4),
                     "prob_free": round(first.prob_free, 4)}}


def list_lots(store: Store, trend_hours: int = 0) -> list[dict[str, Any]]:
    """Every lot with its latest reading and a summary of its latest forecast; with trend_hours, also
    the occupancy rates of the hours before that reading (the overview's sparkline) as [[epoch seconds, rate], ...]."""
    if not 0 <= trend_hours <= MAX_TREND_HOURS:
        raise InvalidInput(f"trend_hours must be 0..{MAX_TREND_HOURS}",
                           [FieldError("trend_hours", "out of range")])
    out = []
    for lot in store.list_lots():
        summary = lot_summary(store, lot)
        if trend_hours and summary["latest"]:
            end = datetime.fromisoformat(summary["latest"]["observed_at"])
            readings = store.query_readings(lot.lot_id, end - timedelta(hours=trend_hours),
                                            end + timedelta(microseconds=1))
            summary["trend"] = [[int(r.observed_at.timestamp()), round(r.occupied / r.capacity, 4)] for r in readings]
        summary["forecast"] = forecast_summary(store.latest_forecast(lot.lot_id))
        out.append(summary)
    return out


def get_lot(store: Store, lot_id: str) -> Lot:
    lot = store.get_lot(lot_id)
    if lot is None:
        raise NotFound(f"no lot {lot_id!r}", [FieldError("lot_id", "unknown lot")])
    return lot


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    if len(value) > 19 and value[-6] == " ":
        value = value[:-6] + "+" + value[-5:]  # an unencoded "+01:00" in a URL arrives as " 01:00"
    try:
        return _time_adapter.validate_python(value).astimezone(UTC)
    except ValidationError:
        raise InvalidInput(f"{name}: not an RFC 3339 date-time with an offset",
                           [FieldError(name, "not an RFC 3339 date-time with an offset")]) from None
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        raise InvalidInput(f"{name}: outside the supported date range (years 1-9999 in UTC)",
                           [FieldError(name, "outside the supported date range (years 1-9999 in UTC)")]) from None


def readings_between(
    store: Store,
    lot_id: str,
    start: str | None,
    end: str | None,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[Reading]:
    """Readings of one lot in [start, end); default: the last 24 hours."""
    get_lot(store, lot_id)
    end_t = _parse_time("end", end) or (now or datetime.now(UTC))
    if end_t.year < 2:
        raise InvalidInput("end: before 0002-01-01", [FieldError("end", "too early")])
    start_t = _parse_time("start", start) or end_t - timedelta(days=1)
    if start_t >= end_t:
        raise InvalidInput("start must be before end", [FieldError("start", "not before end")])
    if end_t - start_t > MAX_RANGE:
        raise InvalidInput(f"range longer than {MAX_RANGE.days} days", [FieldError("end", "range too long")])
    limit = MAX_QUERY_ROWS if limit is None else limit
    if not 1 <= limit <= MAX_QUERY_ROWS:
        raise InvalidInput(f"limit must be 1..{MAX_QUERY_ROWS}", [FieldError("limit", "out of range")])
    return store.query_readings(lot_id, start_t, end_t, limit=limit)


def readings_page(store: Store, lot_id: str, start: str | None, end: str | None,
                  limit: int | None = None) -> dict[str, Any]:
    readings = readings_between(store, lot_id, start, end, limit)
    return {
        "lot_id": lot_id,
        "count": len(readings),
        "readings": [r.model_dump(mode="json", exclude_none=True, exclude={"lot_id"}) for r in readings],
    }
