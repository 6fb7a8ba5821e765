"""A read-through cache of lots for the ingestion path: every POST checks its lot, which
changes almost never. Only hits are cached, for a few seconds, so a new lot is seen at once
and an edited one within ttl_s. Devices are not cached: a revoked key stops at once."""

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
