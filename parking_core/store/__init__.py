"""Storage ports and the factory that picks an adapter from settings."""

from __future__ import annotations

from parking_core.config import Settings
from parking_core.store.port import (
    ConflictError,
    DeviceExistsError,
    DeviceInactive,
    DeviceRegistry,
    NotFoundError,
    ReadingStore,
    Store,
    StoreError,
    StoreUnavailable,
    hash_api_key,
    new_api_key,
)

__all__ = [
    "ConflictError",
    "DeviceExistsError",
    "DeviceInactive",
    "DeviceRegistry",
    "NotFoundError",
    "ReadingStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "hash_api_key",
    "new_api_key",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    if settings.store == "dynamodb":
        from parking_core.store.dynamodb import DynamoDBStore

        return DynamoDBStore(table_prefix=settings.dynamodb_table_prefix, region=settings.aws_region)
    from parking_core.store.sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous,
                       busy_timeout_s=settings.sqlite_busy_timeout_s, max_pages=settings.sqlite_max_pages,
                       write_timeout_s=settings.store_write_timeout_s)
