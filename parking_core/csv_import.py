"""CSV -> readings, with the cleaning rules as code.

Rules (each tested on the real Birmingham file):
- every cell is stripped of surrounding whitespace (the file has a timestamp ending in a TAB);
- naive local times are placed in the lot's timezone; a time inside a DST gap is rejected,
  an ambiguous one (the repeated autumn hour) takes its first occurrence;
- free spaces (`free=` instead of `occupied=`) become occupied = capacity - free;
- the delimiter (, ; tab |) is the one under which the header holds every mapped column;
- times are ISO 8601 or Unix seconds / milliseconds (1e9-2e9 s: 2001-2033; anything else is not
  read as a Unix time, so a compact 2023010212 stays a bad timestamp);
- a negative count is a counter fault: rejected;
- a count above capacity within OVERCAPACITY_TOLERANCE is kept as reported (real counters
  overshoot); beyond it the row is rejected;
- exact duplicate rows become "duplicates" through the store's idempotency key;
- a row that reuses a stored key with different values is rejected, the stored one is kept.
A bad row never stops an import; a missing column stops it before anything is written.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from tqdm import tqdm

from parking_core.contracts import Lot, Reading, check_grid_step, check_timezone
from parking_core.store import ConflictError, Store

CHUNK = 100  # the store's atomic batch size
EPOCH = re.compile(r"1\d{9}(\.\d+)?|1\d{12}")  # Unix seconds or milliseconds, 2001-09 to 2033-05
DELIMITERS = ",;\t|"  # European exports often use ";"


class CsvFormatError(ValueError):
    """The file cannot be read at all (missing column, not a CSV)."""


@dataclass(frozen=True)
class ColumnMapping:
    lot: str
    time: str
    capacity: str
    occupied: str = ""
    free: str = ""  # many cities publish free spaces: occupied = capacity - free

    def __post_init__(self) -> None:
        if bool(self.occupied) == bool(self.free):
            raise CsvFormatError("--columns: name exactly one of occupied=COLUMN and free=COLUMN")
        empty = [name for name in ("lot", "time", "capacity") if not getattr(self, name)]
        if empty:
            raise CsvFormatError(f"--columns: {', '.join(empty)} names no column")

    @property
    def columns(self) -> list[str]:
        return [self.lot, self.time, self.occupied or self.free, self.capacity]

    @classmethod
    def parse(cls, spec: str) -> ColumnMapping:
        """'lot=SystemCodeNumber,time=LastUpdated,occupied=Occupancy,capacity=Capacity' (or free=...
        instead of occupied=...)"""
        pairs: dict[str, str] = {}
        # split only before "name=", so a column may hold a comma ("frei, aktuell")
        for part in re.split(r",(?=\s*\w+\s*=)", spec):
            if "=" not in part:
                raise CsvFormatError(f"--columns: expected name=COLUMN, got {part!r}")
            name, column = (x.strip() for x in part.split("=", 1))
            if name not in cls.__dataclass_fields__:
                raise CsvFormatError(f"--columns: unknown name {name!r} (use lot, time, occupied or free, capacity)")
            pairs[name] = column
        missing = sorted({"lot", "time", "capacity"} - set(pairs)) + ["occupied or free"] * (
            not {"occupied", "free"} & set(pairs))
        if missing:
            raise CsvFormatError(f"--columns: missing {', '.join(missing)}")
        return cls(**pairs)


BIRMINGHAM = ColumnMapping(lot="SystemCodeNumber", time="LastUpdated", occupied="Occupancy", capacity="Capacity")
BIRMINGHAM_TIMEZONE = "Europe/London"


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str
    # "malformed": the row cannot be read; "rule": it was read but breaks a cleaning rule.
    kind: str = "rule"

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    new_lots: list[str] = field(default_factory=list)

    def summary(self) -> str:
        reasons = Counter(r.reason.split(":")[0] for r in self.rejected)
        lines = [
            f"rows: {self.rows}  accepted: {self.accepted}  duplicates: {self.duplicates}  "
            f"rejected: {len(self.rejected)}  new lots: {len(self.new_lots)}"
        ]
        lines += [f"  rejected {n:>5} x {reason}" for reason, n in reasons.most_common()]
        return "\n".join(lines)


def parse_local_time(text: str, zone: ZoneInfo, shift_days: int = 0) -> datetime:
    """ISO 8601 (naive: local time in `zone`), or Unix epoch seconds / milliseconds (UTC).
    shift_days moves a naive time's wall-clock time (a replay keeps each reading's local time of
    day); an aware or Unix time moves by whole 24-hour days."""
    if EPOCH.fullmatch(text):
        seconds = float(text) / (1000 if len(text.split(".")[0]) >= 13 else 1)
        return datetime.fromtimestamp(seconds, UTC) + timedelta(days=shift_days)
    value = datetime.fromisoformat(text) + timedelta(days=shift_days)
    if value.tzinfo is not None:
        return value
    first = value.replace(tzinfo=zone, fold=0)
    # A wall time in the spring-forward gap does not round-trip through UTC.
    if first.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None) != value:
        raise ValueError(f"{text} does not exist in {zone.key} (daylight-saving gap)")
    return first


def header_delimiter(first_line: str, wanted: list[str]) -> str:
    """The delimiter of a CSV from its header line: the first of DELIMITERS under which the
    header holds every `wanted` column (quotes respected); else the one it holds most often."""
    for delimiter in DELIMITERS:
        header = {h.strip() for h in next(csv.reader([first_line], delimiter=delimiter), [])}
        if set(wanted) <= header:
            return delimiter
    return max(DELIMITERS, key=first_line.count)


def _parse_count(name: str, text: str) -> int:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not number.is_integer():
        raise ValueError(f"{name} {text!r} is not a whole number")
    return int(number)


def read_readings(
    path: Path | str, mapping: ColumnMapping, timezone: str, device_id: str, shift_days: int = 0
) -> Iterator[tuple[int, Reading | Rejection]]:
    """Yield (line number, reading or rejection) per data row, cleaning as documented above;
    shift_days moves every reading by whole local days (a replay of old data in the present)."""
    try:
        zone = ZoneInfo(check_timezone(timezone))
    except ValueError as exc:
        raise CsvFormatError(f"{exc} (e.g. Europe/London, America/Chicago)") from None
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=header_delimiter(fh.readline().removeprefix("\ufeff"), mapping.columns))
        fh.seek(0)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in mapping.columns if c not in header]
        if missing:
            raise CsvFormatError(
                f"{path}: missing column(s) {', '.join(missing)}; header is {', '.join(header) or '(empty)'}"
                " (map columns with --columns lot=...,time=...,occupied=... or free=...,capacity=...)"
            )
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
            try:
                capacity = _parse_count("capacity", cells[mapping.capacity])
                if mapping.free:  # a negative free count is an overshoot: the capacity tolerance decides
                    free = _parse_count("free", cells[mapping.free])
                    occupied, counted = capacity - free, f"{free} free of {capacity}; "
                else:
                    occupied, counted = _parse_count("occupied", cells[mapping.occupied]), ""
                if occupied < 0:
                    raise ValueError(f"negative occupied: {occupied} ({counted}counter fault)")
                try:
                    observed_at = parse_local_time(cells[mapping.time], zone, shift_days)
                except ValueError as exc:
                    raise ValueError(f"bad timestamp: {cells[mapping.time]!r} ({exc})") from None
                reading = Reading(
                    lot_id=cells[mapping.lot],
                    device_id=device_id,
                    observed_at=observed_at,
                    capacity=capacity,
                    occupied=occupied,
                )
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                yield line, Rejection(line, f"invalid {where}: {err['msg'].removeprefix('Value error, ')}")
                continue
            except ValueError as exc:
                malformed = "negative" not in str(exc)
                yield line, Rejection(line, str(exc), "malformed" if malformed else "rule")
                continue
            yield line, reading


def _store_chunk(store: Store, chunk: list[tuple[int, Reading]], report: ImportReport) -> None:
    try:
        outcomes = store.put_readings([r for _, r in chunk])
    except ConflictError:
        # Find the offending rows one by one; the rest of the chunk still goes in.
        for line, reading in chunk:
            try:
                outcomes = store.put_readings([reading])
            except ConflictError:
                report.rejected.append(Rejection(line, "conflict: same lot/device/time stored with other values"))
                continue
            report.accepted += outcomes.count("created")
            report.duplicates += outcomes.count("duplicate")
        return
    report.accepted += outcomes.count("created")
    report.duplicates += outcomes.count("duplicate")


def import_csv(
    store: Store,
    path: Path | str,
    mapping: ColumnMapping = BIRMINGHAM,
    timezone: str | None = BIRMINGHAM_TIMEZONE,
    device_id: str = "csv-import",
    step_minutes: int = 30,
    progress: bool | None = None,
    shift_days: int = 0,
) -> ImportReport:
    """Idempotent: importing the same file twice (with the same shift) stores each reading once.
    timezone None: the one the store's lots share (Europe/London for an empty store). A file is
    refused before anything is written if it would read an existing lot's naive times in another
    timezone than the lot's (every reading would be shifted)."""
    timezone = timezone or _store_timezone(store)
    try:
        check_grid_step(step_minutes)
    except ValueError as exc:
        raise CsvFormatError(f"grid step {step_minutes!r} minutes: {exc}") from None
    report = ImportReport()
    parsed = list(read_readings(path, mapping, timezone, device_id, shift_days))
    report.rows = len(parsed)
    readings = [(line, item) for line, item in parsed if isinstance(item, Reading)]
    report.rejected.extend(item for _, item in parsed if isinstance(item, Rejection))

    capacities: dict[str, Counter[int]] = {}
    for _, r in readings:
        capacities.setdefault(r.lot_id, Counter())[r.capacity] += 1
    existing = {lot_id: store.get_lot(lot_id) for lot_id in sorted(capacities)}
    for lot_id, lot in existing.items():
        if lot is not None and lot.timezone != timezone:
            raise CsvFormatError(f"lot {lot_id} is in {lot.timezone}: reading this file's times in {timezone} "
                                 f"would shift them; pass --timezone {lot.timezone} (nothing was imported)")
    for lot_id, counts in sorted(capacities.items()):
        if existing[lot_id] is None:
            capacity = counts.most_common(1)[0][0]
            store.put_lot(
                Lot(lot_id=lot_id, name=lot_id, capacity=capacity, timezone=timezone, grid_step_minutes=step_minutes)
            )
            report.new_lots.append(lot_id)

    # Chunks per lot keep each atomic batch on one DynamoDB partition and one SQLite page range.
    readings.sort(key=lambda item: (item[1].lot_id, item[1].observed_at))
    bar = tqdm(total=len(readings), unit="rows", desc=f"import {Path(path).name}", disable=progress is False or None)
    for start in range(0, len(readings), CHUNK):
        chunk = readings[start : start + CHUNK]
        _store_chunk(store, chunk, report)
        bar.update(len(chunk))
    bar.close()
    report.rejected.sort(key=lambda r: r.line)
    return report


def _store_timezone(store: Store) -> str:
    zones = sorted({lot.timezone for lot in store.list_lots()})
    if len(zones) > 1:
        raise CsvFormatError(f"the store's lots are in {', '.join(zones)}: pass --timezone for this file")
    return zones[0] if zones else BIRMINGHAM_TIMEZONE


def read_frame(path: Path | str, mapping: ColumnMapping, timezone: str, strict: bool = True):
    """Readings of a CSV as a DataFrame (lot_id, observed_at, occupied, capacity) for modelling.

    strict: a malformed row (unreadable time or number) raises CsvFormatError naming the line;
    rows that break a cleaning rule are dropped either way and returned as rejections.
    """
    import pandas as pd

    rows: list[tuple] = []
    rejected: list[Rejection] = []
    for _, item in read_readings(path, mapping, timezone, "csv"):
        if isinstance(item, Rejection):
            if strict and item.kind == "malformed":
                raise CsvFormatError(f"{path}: line {item.line}: {item.reason}")
            rejected.append(item)
        else:
            rows.append((item.lot_id, item.observed_at, item.occupied, item.capacity))
    frame = pd.DataFrame(rows, columns=["lot_id", "observed_at", "occupied", "capacity"])
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
    return frame.drop_duplicates(), rejected
