"""A read-through cache for the two lookups every ingestion request makes (its device by key
hash, its lot), so a POST costs one write and no reads. Only hits are cached, for a few
seconds: a new lot or device is seen at once; a revoked key or a changed lot within ttl_s."""

from __future__ import annotations

import threading
import time
from typing import Any

from parking_core.contracts import Device, Lot


class CachedLookups:
    def __init__(self, store: Any, ttl_s: float):
        self._store = store
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _cached(self, kind: str, key: str, load) -> Any:
        now = time.monotonic()
        hit = self._entries.get((kind, key))
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load(key)
        if value is not None:
            with self._lock:
                if len(self._entries) > 100_000:  # unbounded keys would be a memory leak; start over
                    self._entries.clear()
                self._entries[(kind, key)] = (now + self._ttl, value)
        return value

    def device_for_key_hash(self, key_hash: str) -> Device | None:
        return self._cached("device", key_hash, self._store.device_for_key_hash)

    def get_lot(self, lot_id: str) -> Lot | None:
        return self._cached("lot", lot_id, self._store.get_lot)
