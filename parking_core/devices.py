"""Device registration: one API key per device, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

from datetime import UTC, datetime

from parking_core.contracts import Device
from parking_core.store import NotFoundError, Store, hash_api_key, new_api_key


def register_device(store: Store, lot_id: str, device_id: str | None = None) -> tuple[Device, str]:
    if store.get_lot(lot_id) is None:
        raise NotFoundError(f"no lot {lot_id!r}; import data or create the lot first")
    if device_id is None:
        taken = {d.device_id for d in store.list_devices()}
        n = 1
        while f"{lot_id}-cam-{n}" in taken:
            n += 1
        device_id = f"{lot_id}-cam-{n}"
    device = Device(device_id=device_id, lot_id=lot_id, created_at=datetime.now(UTC))
    key = new_api_key()
    store.add_device(device, hash_api_key(key))
    return device, key
