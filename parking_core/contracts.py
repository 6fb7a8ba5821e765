"""Versioned data contracts shared by the edge, the API, the pipeline and the web page.

Every boundary parses input through these models, so a bad field is rejected with a
message naming it before anything is stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

CONTRACT_VERSION = "1"

# Real counters overshoot capacity by a few percent (Birmingham peaks at 1.041x);
# anything beyond this fraction above capacity is a broken sensor, not a full car park.
OVERCAPACITY_TOLERANCE = 0.10

# Identifiers from real operators contain spaces and dashes ("Broad Street", "Others-CCCPS133").
# Published in the OpenAPI document as is (ECMA and Python read it alike with fullmatch).
ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN[1:-1])


def _check_identifier(value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ValueError(
            "must be 1-64 characters: letters, digits, space, '.', '_', ':' or '-', starting with a letter or digit"
        )
    return value


Identifier = Annotated[
    str, AfterValidator(_check_identifier), Field(json_schema_extra={"pattern": ID_PATTERN, "maxLength": 64})
]

# RFC 3339 date-time (what OpenAPI's format "date-time" means): seconds and an offset required.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: object) -> object:
    """Text must be RFC 3339 (parsed here, so strict wire validation gets a datetime)."""
    if not isinstance(value, str):
        return value
    try:
        if _RFC3339.fullmatch(value):
            return datetime.fromisoformat(value.upper())
    except ValueError:
        pass  # e.g. month 13, second 60
    raise ValueError("must be an RFC 3339 date-time with seconds and an offset, e.g. 2016-10-04T08:00:00+01:00")


WireTime = Annotated[datetime, BeforeValidator(_rfc3339_text)]


def _integral(value: object) -> object:
    # JSON Schema counts 258.0 as an integer; strict validation would not. True stays a boolean.
    return int(value) if isinstance(value, float) and value.is_integer() else value


WireInt = Annotated[int, BeforeValidator(_integral)]


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset, e.g. 2016-10-04T08:00:00+01:00")
    return value.astimezone(UTC)


def max_occupied(capacity: int) -> int:
    """The highest count accepted for a lot of this capacity (see OVERCAPACITY_TOLERANCE)."""
    return int(capacity * (1 + OVERCAPACITY_TOLERANCE))


def utc_iso(value: datetime) -> str:
    """Fixed-width UTC text: sorts lexicographically in time order (SQLite and DynamoDB keys)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_timezone(value: str) -> str:
    """An IANA timezone name (a lot's, or the one a CSV's naive times are read in)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {value!r}") from exc
    return value


def check_grid_step(value: int) -> int:
    """A lot's grid step in minutes: it must divide a day."""
    if not 1 <= value <= 1440 or 1440 % value:
        raise ValueError("must divide a day (1440 minutes) evenly")
    return value


class Lot(_Model):
    lot_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    capacity: int = Field(gt=0, le=100_000)
    timezone: str = "UTC"
    grid_step_minutes: int = Field(default=30, ge=1, le=1440)
    # Local opening hours as "HH:MM"; None means the lot reports around the clock.
    opens_at: str | None = None
    closes_at: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("grid_step_minutes")
    @classmethod
    def _step_divides_day(cls, value: int) -> int:
        return check_grid_step(value)

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("must be a local time HH:MM")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SlotState(_Model):
    slot_id: str = Field(min_length=1, max_length=64)
    occupied: bool
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)


class Reading(_Model):
    """One count from one device. Idempotency key: (lot_id, device_id, observed_at)."""

    lot_id: Identifier
    device_id: Identifier
    observed_at: WireTime
    capacity: WireInt = Field(gt=0, le=100_000)
    occupied: WireInt = Field(ge=0, le=110_000, description="at most 10% above capacity")
    slots: tuple[SlotState, ...] | None = Field(default=None, max_length=10_000)

    @field_validator("observed_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        return _require_aware(value)

    @field_validator("occupied")
    @classmethod
    def _not_far_above_capacity(cls, value: int, info: ValidationInfo) -> int:
        capacity = info.data.get("capacity")
        if capacity is not None and value > max_occupied(capacity):
            raise ValueError(
                f"{value} is more than {OVERCAPACITY_TOLERANCE:.0%} above capacity {capacity} "
                f"(at most {max_occupied(capacity)} accepted)"
            )
        return value

    @field_validator("slots")
    @classmethod
    def _slots_agree(cls, value: tuple[SlotState, ...] | None, info: ValidationInfo):
        if value is None:
            return value
        if len({s.slot_id for s in value}) != len(value):
            raise ValueError("slot_id values must be unique")
        occupied = info.data.get("occupied")
        taken = sum(1 for s in value if s.occupied)
        if occupied is not None and taken != occupied:
            raise ValueError(f"{taken} occupied slots disagree with occupied={occupied}")
        return value

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.lot_id, self.device_id, self.observed_at)

    def same_values(self, other: Reading) -> bool:
        return (self.capacity, self.occupied, self.slots) == (other.capacity, other.occupied, other.slots)


class ForecastStep(_Model):
    target_time: datetime
    p10: float = Field(ge=0.0, le=1.0)
    p50: float = Field(ge=0.0, le=1.0)
    p90: float = Field(ge=0.0, le=1.0)
    prob_free: float = Field(ge=0.0, le=1.0, description="Probability that at least one slot is free")

    @field_validator("target_time")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        return _require_aware(value)

    @field_validator("p50", "p90")
    @classmethod
    def _ordered_quantiles(cls, value: float, info: ValidationInfo) -> float:
        lower = info.data.get("p50" if info.field_name == "p90" else "p10")
        if lower is not None and value < lower:
            raise ValueError("quantiles must be ordered: p10 <= p50 <= p90")
        return value


class Forecast(_Model):
    lot_id: Identifier
    issued_at: datetime
    model_version: str = Field(min_length=1, max_length=128)
    # "model" when the network answered; "baseline:<name>" when a lot had too little history.
    source: str = Field(default="model", min_length=1, max_length=64)
    steps: tuple[ForecastStep, ...] = Field(min_length=1, max_length=1000)

    @field_validator("issued_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        return _require_aware(value)

    @field_validator("steps")
    @classmethod
    def _steps_in_order(cls, value: tuple[ForecastStep, ...]) -> tuple[ForecastStep, ...]:
        times = [s.target_time for s in value]
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError("target_time must be strictly increasing")
        return value


class Device(_Model):
    device_id: Identifier
    lot_id: Identifier
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


PutOutcome = Literal["created", "duplicate"]


class ReadingBatch(_Model):
    readings: list[Reading] = Field(min_length=1, max_length=100)
