"""A read-through cache of lots for the ingestion path: every POST checks its lot, which
changes almost never. Only hits are cached, for a few seconds, so a new lot is seen at once
and an edited one within ttl_s. Device keys are cached only where the write re-checks the device
(DeviceKeys below), so a revoked key stops at once either way."""

from __future__ import annotations

import threading
import time
from typing import Any

from parking_core.contracts import Lot


class _Expiring:
    """key -> value for ttl_s seconds; bounded, since the keys come from requests."""

    def __init__(self, ttl_s: float, max_keys: int = 100_000):
        self._ttl = ttl_s
        self._max = max_keys
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        hit = self._items.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def put(self, key: str, value: Any) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= self._max:
                self._items.clear()
            self._items[key] = (time.monotonic() + self._ttl, value)

    def forget(self, key: str) -> None:
        self._items.pop(key, None)


class CachedLookups:
    def __init__(self, store: Any, ttl_s: float):
        self._store = store
        self._lots = _Expiring(ttl_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_lot(self, lot_id: str) -> Lot | None:
        lot = self._lots.get(lot_id)
        if lot is None:
            lot = self._store.get_lot(lot_id)
            if lot is not None:
                self._lots.put(lot_id, lot)
        return lot


class DeviceKeys:
    """A cache of API key hash -> active device for the ingestion path, whose one SQLite read per
    request cost about a third of a single reading's CPU. Only for a write that re-checks the
    device in its own transaction (SQLiteStore.put_readings_async(device_id=...)): a key revoked
    while cached is refused at commit and dropped from here, so revocation stays immediate."""

    def __init__(self, store: Any, ttl_s: float, max_keys: int = 100_000):
        self._store = store
        self._devices = _Expiring(ttl_s, max_keys)

    def device_for_key_hash(self, key_hash: str):
        device = self._devices.get(key_hash)
        if device is None:
            device = self._store.device_for_key_hash(key_hash)
            if device is not None and device.active:  # unknown and revoked keys: asked every time
                self._devices.put(key_hash, device)
        return device

    def forget(self, key_hash: str) -> None:
        self._devices.forget(key_hash)
