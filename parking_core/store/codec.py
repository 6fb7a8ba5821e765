"""Row <-> contract conversions shared by the SQLite and DynamoDB adapters."""

from __future__ import annotations

import json
from datetime import datetime

from parking_core.contracts import Reading, SlotState, utc_iso


def slots_to_json(reading: Reading) -> str | None:
    if reading.slots is None:
        return None
    return json.dumps([s.model_dump(exclude_none=True) for s in reading.slots], separators=(",", ":"))


def reading_from_row(
    lot_id: str, device_id: str, observed_at: str, capacity: int, occupied: int, slots: str | None
) -> Reading:
    # Stored rows were validated on the way in; skip re-validation on the read path.
    return Reading.model_construct(
        lot_id=lot_id,
        device_id=device_id,
        observed_at=datetime.fromisoformat(observed_at),
        capacity=int(capacity),
        occupied=int(occupied),
        slots=None if slots is None else tuple(SlotState(**s) for s in json.loads(slots)),
    )


def reading_sort_key(reading: Reading) -> str:
    """Sort key inside a lot: UTC time first so range queries are key ranges."""
    return f"{utc_iso(reading.observed_at)}#{reading.device_id}"
