"""A read-through cache of lots for the ingestion path: every POST checks its lot, which
changes almost never. Only hits are cached, for a few seconds, so a new lot is seen at once
and an edited one within ttl_s. Device keys are cached only where the write re-checks the device
(DeviceKeys below), so a revoked key stops at once either way."""

from __future__ import annotations

import threading
import time
from typing import Any

from parking_core.contracts import Lot


class CachedLookups:
    def __init__(self, store: Any, ttl_s: float):
        self._store = store
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._lots: dict[str, tuple[float, Lot]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_lot(self, lot_id: str) -> Lot | None:
        now = time.monotonic()
        hit = self._lots.get(lot_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        lot = self._store.get_lot(lot_id)
        if lot is not None:
            with self._lock:
                if len(self._lots) > 100_000:  # ids come from requests: bound the memory
                    self._lots.clear()
                self._lots[lot_id] = (now + self._ttl, lot)
        return lot


class DeviceKeys:
    """A cache of API key hash -> active device for the ingestion path, whose one SQLite read per
    request cost about a third of a single reading's CPU. Only for a write that re-checks the
    device in its own transaction (SQLiteStore.put_readings_async(device_id=...)): a key revoked
    while cached is refused at commit and dropped from here, so revocation stays immediate."""

    def __init__(self, store: Any, ttl_s: float, max_keys: int = 100_000):
        self._store = store
        self._ttl = ttl_s
        self._max = max_keys
        self._devices: dict[str, tuple[float, Any]] = {}

    def device_for_key_hash(self, key_hash: str):
        now = time.monotonic()
        hit = self._devices.get(key_hash)
        if hit is not None and hit[0] > now:
            return hit[1]
        device = self._store.device_for_key_hash(key_hash)
        if self._ttl > 0 and device is not None and device.active:  # unknown and revoked keys: asked every time
            if len(self._devices) >= self._max:
                self._devices.clear()
            self._devices[key_hash] = (now + self._ttl, device)
        return device

    def forget(self, key_hash: str) -> None:
        self._devices.pop(key_hash, None)
