"""Daily export of readings and forecasts to the object store, in the layout the pipeline reads:

    readings/date=YYYY-MM-DD/readings.parquet     one row per reading (UTC day of observed_at)
    forecasts/date=YYYY-MM-DD/forecasts.parquet   one row per forecast step (UTC day of issued_at)
    <kind>/date=YYYY-MM-DD/_manifest.json         row count and content hash

The Dagster asset `daily_readings` and the Lambda `daily_export_to_s3` both call export_day.
Idempotent: a rerun over unchanged data rewrites nothing; the counts are verified after writing.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from parking_core.objectstore import ObjectStore
from parking_core.store import ReadingStore

READING_SCHEMA = {
    "lot_id": pl.String,
    "device_id": pl.String,
    "observed_at": pl.Datetime("us", "UTC"),
    "capacity": pl.Int32,
    "occupied": pl.Int32,
    "slots": pl.String,
}
FORECAST_SCHEMA = {
    "lot_id": pl.String,
    "issued_at": pl.Datetime("us", "UTC"),
    "model_version": pl.String,
    "source": pl.String,
    "target_time": pl.Datetime("us", "UTC"),
    "p10": pl.Float64,
    "p50": pl.Float64,
    "p90": pl.Float64,
    "prob_free": pl.Float64,
}


class ExportMismatch(RuntimeError):
    """The written partition does not hold what the store holds."""


@dataclass
class ExportResult:
    day: date
    readings: int
    forecasts: int
    written: list[str]  # keys rewritten (empty on an idempotent rerun)

    def to_dict(self) -> dict:
        return {"day": self.day.isoformat(), "readings": self.readings, "forecasts": self.forecasts,
                "written": self.written}


def partition_key(kind: str, day: date, name: str | None = None) -> str:
    return f"{kind}/date={day.isoformat()}/{name or kind + '.parquet'}"


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def readings_frame(store: ReadingStore, day: date) -> pl.DataFrame:
    start, end = _day_bounds(day)
    rows = []
    for lot in store.list_lots():
        for r in store.query_readings(lot.lot_id, start, end):
            slots = None if r.slots is None else json.dumps([s.model_dump(exclude_none=True) for s in r.slots])
            rows.append((r.lot_id, r.device_id, r.observed_at, r.capacity, r.occupied, slots))
    frame = pl.DataFrame(rows, schema=READING_SCHEMA, orient="row")
    return frame.sort(["lot_id", "observed_at", "device_id"])


def forecasts_frame(store: ReadingStore, day: date) -> pl.DataFrame:
    start, end = _day_bounds(day)
    rows = []
    for lot in store.list_lots():
        for f in store.query_forecasts(lot.lot_id, start, end):
            for s in f.steps:
                rows.append((f.lot_id, f.issued_at, f.model_version, f.source, s.target_time, s.p10, s.p50, s.p90,
                             s.prob_free))
    frame = pl.DataFrame(rows, schema=FORECAST_SCHEMA, orient="row")
    return frame.sort(["lot_id", "issued_at", "target_time"])


def _content_hash(frame: pl.DataFrame) -> str:
    buf = io.BytesIO()
    frame.write_csv(buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _write_partition(objects: ObjectStore, kind: str, day: date, frame: pl.DataFrame) -> bool:
    manifest_key = partition_key(kind, day, "_manifest.json")
    digest = _content_hash(frame)
    if objects.exists(manifest_key) and objects.get_json(manifest_key).get("sha256") == digest:
        return False
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=True)
    objects.put_bytes(partition_key(kind, day), buf.getvalue())
    objects.put_json(manifest_key, {"rows": frame.height, "sha256": digest, "schema": list(frame.columns)})
    return True


def read_partition(objects: ObjectStore, kind: str, day: date) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(objects.get_bytes(partition_key(kind, day))))


def export_day(store: ReadingStore, objects: ObjectStore, day: date) -> ExportResult:
    written = []
    counts = {}
    for kind, frame in (("readings", readings_frame(store, day)), ("forecasts", forecasts_frame(store, day))):
        if _write_partition(objects, kind, day, frame):
            written.append(partition_key(kind, day))
        stored = read_partition(objects, kind, day)
        if stored.height != frame.height:
            raise ExportMismatch(f"{kind} {day}: wrote {frame.height} rows, read back {stored.height}")
        counts[kind] = frame.height
    return ExportResult(day, counts["readings"], counts["forecasts"], written)


def exported_days(objects: ObjectStore, kind: str = "readings") -> list[date]:
    days = set()
    for key in objects.list(kind):
        part = key.split("/")[1]
        if part.startswith("date="):
            days.add(date.fromisoformat(part[5:]))
    return sorted(days)
