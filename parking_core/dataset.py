"""The consolidated training dataset: every exported day merged, deduplicated, schema enforced.

    dataset/readings.parquet   all readings (READING_SCHEMA), sorted, unique per key
    dataset/manifest.json      days included, row count, content hash
"""

from __future__ import annotations

import hashlib
import io
from datetime import date

import pandas as pd
import polars as pl

from parking_core.export import READING_SCHEMA, exported_days, partition_key, read_partition
from parking_core.objectstore import ObjectStore

DATASET_KEY = "dataset/readings.parquet"
MANIFEST_KEY = "dataset/manifest.json"
KEY_COLUMNS = ["lot_id", "device_id", "observed_at"]


def manifest(objects: ObjectStore) -> dict | None:
    return objects.get_json(MANIFEST_KEY) if objects.exists(MANIFEST_KEY) else None


def load(objects: ObjectStore) -> pl.DataFrame:
    if not objects.exists(DATASET_KEY):
        return pl.DataFrame(schema=READING_SCHEMA)
    return pl.read_parquet(io.BytesIO(objects.get_bytes(DATASET_KEY)))


def partition_hash(objects: ObjectStore, day: date) -> str | None:
    """The content hash of a day's readings partition, from its export manifest."""
    key = partition_key("readings", day, "_manifest.json")
    return objects.get_json(key).get("sha256") if objects.exists(key) else None


def new_days(objects: ObjectStore) -> list[date]:
    """Exported days not merged yet, and merged days whose export changed since (readings that
    arrived late, e.g. from an edge outbox after an outage, and were exported again)."""
    info = manifest(objects) or {}
    done, hashes = set(info.get("days", [])), info.get("day_hashes", {})
    return [d for d in exported_days(objects) if d.isoformat() not in done
            or (d.isoformat() in hashes and hashes[d.isoformat()] != partition_hash(objects, d))]


def read_days(objects: ObjectStore, days: list[date]) -> pl.DataFrame:
    frames = [read_partition(objects, "readings", d) for d in days]
    return pl.concat(frames) if frames else pl.DataFrame(schema=READING_SCHEMA)


def consolidate(objects: ObjectStore, days: list[date]) -> dict:
    """Merge the given exported days into the dataset; a later copy of a key wins."""
    current = load(objects)
    merged = pl.concat([current, read_days(objects, days)]).cast(READING_SCHEMA)  # type: ignore[arg-type]
    required = pl.col(["lot_id", "observed_at", "capacity", "occupied"])
    if merged.select(pl.any_horizontal(required.is_null()).any()).item():
        raise ValueError("dataset rows with missing lot_id, observed_at, capacity or occupied")
    merged = merged.unique(KEY_COLUMNS, keep="last").sort(KEY_COLUMNS)
    buf = io.BytesIO()
    merged.write_parquet(buf, compression="zstd")
    payload = buf.getvalue()
    before = manifest(objects) or {}
    info = {
        "days": sorted({*before.get("days", []), *(d.isoformat() for d in days)}),
        "day_hashes": {**before.get("day_hashes", {}), **{d.isoformat(): partition_hash(objects, d) for d in days}},
        "rows": merged.height,
        "data_hash": hashlib.sha256(payload).hexdigest(),
        "schema": {k: str(v) for k, v in READING_SCHEMA.items()},
    }
    objects.put_bytes(DATASET_KEY, payload)
    objects.put_json(MANIFEST_KEY, info)
    return info


def to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """The shape parking_core.forecasting takes (lot_id, observed_at, occupied, capacity)."""
    out = frame.select(["lot_id", "observed_at", "occupied", "capacity"]).to_pandas()
    out["observed_at"] = pd.to_datetime(out["observed_at"], utc=True)
    return out
