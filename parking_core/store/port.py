"""The storage ports. Adapters: sqlite.py (local default) and dynamodb.py (AWS)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from parking_core.contracts import Device, Forecast, Lot, PutOutcome, Reading


class StoreError(Exception):
    """Base class of storage errors that callers answer with a clear message."""


class ConflictError(StoreError):
    """A reading reuses an idempotency key with different values; nothing was written."""

    def __init__(self, conflicts: list[int]):
        self.conflicts = conflicts
        super().__init__(
            f"readings at positions {conflicts} reuse (lot_id, device_id, observed_at) of a stored reading "
            "with different values; nothing was stored"
        )


class NotFoundError(StoreError):
    pass


class StoreUnavailable(StoreError):
    """The store cannot serve now (disk full, read-only, locked elsewhere, throttled); nothing was
    written by the failed call. Adapters answer 503: the caller retries later with the same keys."""


class DeviceInactive(StoreError):
    """The device a write was made for is revoked or gone at commit time; nothing was written."""


class DeviceExistsError(StoreError):
    pass


class ReadingStore(Protocol):
    """Readings, forecasts and the lots they belong to."""

    def put_lot(self, lot: Lot) -> None: ...
    def get_lot(self, lot_id: str) -> Lot | None: ...
    def list_lots(self) -> list[Lot]: ...

    def put_readings(self, readings: Sequence[Reading]) -> list[PutOutcome]:
        """All-or-nothing: every reading is created or a duplicate, or ConflictError and none stored."""
        ...

    def query_readings(
        self, lot_id: str, start: datetime, end: datetime, limit: int | None = None
    ) -> list[Reading]:
        """Readings with start <= observed_at < end, oldest first."""
        ...

    def latest_reading(self, lot_id: str) -> Reading | None: ...
    def count_readings(self, lot_id: str | None = None) -> int: ...

    def put_forecast(self, forecast: Forecast) -> None: ...
    def latest_forecast(self, lot_id: str) -> Forecast | None: ...
    def query_forecasts(self, lot_id: str, start: datetime, end: datetime) -> list[Forecast]:
        """Forecasts with start <= issued_at < end, oldest first."""
        ...


class DeviceRegistry(Protocol):
    """Devices and their API keys. Keys are stored only as SHA-256 hashes."""

    def add_device(self, device: Device, key_hash: str) -> None: ...
    def get_device(self, device_id: str) -> Device | None: ...
    def list_devices(self) -> list[Device]: ...
    def revoke_device(self, device_id: str, at: datetime) -> Device: ...
    def device_for_key_hash(self, key_hash: str) -> Device | None: ...


class Store(ReadingStore, DeviceRegistry, Protocol):
    def close(self) -> None: ...


def new_api_key() -> str:
    # 32 random bytes: brute force is out of reach, so a fast hash is the right storage
    # (as for GitHub tokens); a slow KDF would only add latency to every request.
    return "pk_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def classify_batch(readings: Sequence[Reading], stored: dict[tuple, Reading]) -> tuple[list[PutOutcome], list[int]]:
    """Outcome per reading given what is already stored (and earlier items of the same batch).

    Returns the outcomes and the positions that conflict. Shared by every adapter so they
    agree exactly on what counts as a duplicate.
    """
    seen = dict(stored)
    outcomes: list[PutOutcome] = []
    conflicts: list[int] = []
    for i, reading in enumerate(readings):
        previous = seen.get(reading.key)
        if previous is None:
            outcomes.append("created")
            seen[reading.key] = reading
        elif previous.same_values(reading):
            outcomes.append("duplicate")
        else:
            outcomes.append("duplicate")
            conflicts.append(i)
    return outcomes, conflicts
