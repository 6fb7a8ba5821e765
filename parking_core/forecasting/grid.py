"""The time grid: readings -> one occupancy rate per lot, local day and grid slot.

Same code in training, backtest and serving, so the served model sees exactly what it
was trained on. Rules:
- a reading goes to the nearest grid point in the lot's local time (08:25:42 -> 08:30,
  07:59:42 -> 08:00); several readings on one point are averaged;
- opening hours are the slots a lot reports on most days (Birmingham: 08:00-16:30);
  readings outside them are dropped and nothing is ever invented outside them;
- a 24-hour lot simply has every slot open;
- missing days and slots stay missing (NaN) here; the model's inputs impute them later
  and flag them, and no loss or score is ever computed on an imputed value;
- the rate is occupied / capacity clipped to [0, 1] (counters overshoot a few percent);
- a dead sensor, the same non-zero, non-full count for DEAD_AFTER or longer, is masked from
  the point the run reaches DEAD_AFTER on (never in hindsight: a grid must not depend on
  readings after the forecast origin).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

DEAD_AFTER = timedelta(hours=4)
OPEN_SLOT_MIN_SHARE = 0.5


@dataclass(frozen=True)
class GridSpec:
    """Where a lot's grid points fall: its step and the local slots it is open."""

    step_minutes: int
    open_slots: tuple[int, ...]  # minutes after local midnight

    @property
    def slots_per_day(self) -> int:
        return len(self.open_slots)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GridSpec:
        return cls(step_minutes=int(d["step_minutes"]), open_slots=tuple(int(s) for s in d["open_slots"]))


def nearest_slot(local_minutes: np.ndarray, step_minutes: int) -> np.ndarray:
    """Round minutes-after-midnight to the nearest grid point (ties round up)."""
    return (np.floor(local_minutes / step_minutes + 0.5) * step_minutes).astype(int)


def align(readings: pd.DataFrame, timezone: str, step_minutes: int) -> pd.DataFrame:
    """Readings (lot_id, observed_at [tz-aware], occupied, capacity) -> one row per grid point.

    Returns columns lot_id, date (local), slot (minutes after midnight), occupied (mean),
    capacity, rate (clipped to [0, 1]), n (readings averaged).
    """
    if readings.empty:
        return pd.DataFrame(columns=["lot_id", "date", "slot", "occupied", "capacity", "rate", "n"])
    local = pd.to_datetime(readings["observed_at"], utc=True).dt.tz_convert(timezone).dt.tz_localize(None)
    minutes = (local - local.dt.normalize()).dt.total_seconds().to_numpy() / 60.0
    slot = nearest_slot(minutes, step_minutes)
    day = local.dt.normalize()
    # A reading at 23:50 on a 30-minute grid belongs to 00:00 of the next day.
    rolled = slot >= 1440
    day = day + pd.to_timedelta(rolled.astype(int), unit="D")
    slot = np.where(rolled, slot - 1440, slot)
    frame = pd.DataFrame(
        {
            "lot_id": readings["lot_id"].to_numpy(),
            "date": day.dt.date.to_numpy(),
            "slot": slot,
            "occupied": readings["occupied"].to_numpy(dtype=float),
            "capacity": readings["capacity"].to_numpy(dtype=float),
        }
    )
    grouped = frame.groupby(["lot_id", "date", "slot"], sort=True).agg(
        occupied=("occupied", "mean"), capacity=("capacity", "max"), n=("occupied", "size")
    )
    grouped = grouped.reset_index()
    grouped["rate"] = (grouped["occupied"] / grouped["capacity"]).clip(0.0, 1.0)
    return grouped


def infer_open_slots(aligned: pd.DataFrame, step_minutes: int) -> tuple[int, ...]:
    """Slots present on at least OPEN_SLOT_MIN_SHARE of the lot-days seen."""
    if aligned.empty:
        return tuple(range(0, 1440, step_minutes))
    lot_days = aligned.groupby(["lot_id", "date"]).ngroups
    share = aligned.groupby("slot").size() / lot_days
    slots = sorted(int(s) for s in share[share >= OPEN_SLOT_MIN_SHARE].index)
    return tuple(slots) or tuple(range(0, 1440, step_minutes))


def mask_dead_sensor(aligned: pd.DataFrame, step_minutes: int) -> pd.DataFrame:
    """Set rate to NaN where a lot has repeated one non-zero, non-full count for DEAD_AFTER or
    longer up to that point. Causal: whether a point is masked depends on it and the points
    before it only, so a grid built at a forecast origin and one built later agree up to it."""
    out = aligned.sort_values(["lot_id", "date", "slot"]).reset_index(drop=True)
    if out.empty:
        return out
    min_run = int(DEAD_AFTER / timedelta(minutes=step_minutes))
    counts = out["occupied"].round()
    run_id = ((counts != counts.shift()) | (out["lot_id"] != out["lot_id"].shift())).cumsum()
    run_so_far = run_id.groupby(run_id).cumcount() + 1
    flat = (run_so_far >= min_run) & (counts > 0) & (counts < out["capacity"])
    out.loc[flat, "rate"] = np.nan
    return out


@dataclass
class Cube:
    """Rates as a dense array [lot, day, slot] over consecutive local days; NaN = missing."""

    lots: list[str]
    days: list[date]
    spec: GridSpec
    rate: np.ndarray  # float32 [n_lots, n_days, slots_per_day]
    capacity: np.ndarray  # float32 [n_lots]
    timezone: str = "UTC"

    def lot_index(self, lot_id: str) -> int:
        return self.lots.index(lot_id)

    def day_index(self, day: date) -> int:
        return (day - self.days[0]).days

    def slot_index(self, minutes: int) -> int:
        return self.spec.open_slots.index(minutes)

    def day_slice(self, start: int | None = None, stop: int | None = None) -> Cube:
        """The same lots over days[start:stop] (Python slice semantics)."""
        span = slice(start, stop)
        return Cube(self.lots, self.days[span], self.spec, self.rate[:, span], self.capacity, self.timezone)


def build_cube(
    aligned: pd.DataFrame,
    spec: GridSpec,
    lots: list[str] | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    capacity: dict[str, float] | None = None,
    timezone: str = "UTC",
) -> Cube:
    """Dense [lot, day, slot] array; slots outside opening hours are dropped."""
    lots = sorted(aligned["lot_id"].unique()) if lots is None else list(lots)
    first_day = first_day or min(aligned["date"])
    last_day = last_day or max(aligned["date"])
    n_days = (last_day - first_day).days + 1
    days = [first_day + timedelta(days=i) for i in range(n_days)]
    rate = np.full((len(lots), n_days, spec.slots_per_day), np.nan, dtype=np.float32)
    slot_pos = {s: i for i, s in enumerate(spec.open_slots)}
    lot_pos = {lot: i for i, lot in enumerate(lots)}
    rows = aligned[aligned["slot"].isin(slot_pos) & aligned["lot_id"].isin(lot_pos)]
    day_idx = np.array([(d - first_day).days for d in rows["date"]], dtype=int)
    keep = (day_idx >= 0) & (day_idx < n_days)
    rows, day_idx = rows[keep], day_idx[keep]
    rate[
        rows["lot_id"].map(lot_pos).to_numpy(dtype=int),
        day_idx,
        rows["slot"].map(slot_pos).to_numpy(dtype=int),
    ] = rows["rate"].to_numpy(dtype=np.float32)
    caps = capacity or aligned.groupby("lot_id")["capacity"].max().to_dict()
    cap = np.array([caps.get(lot, np.nan) for lot in lots], dtype=np.float32)
    return Cube(lots=lots, days=days, spec=spec, rate=rate, capacity=cap, timezone=timezone)


def readings_to_cube(
    readings: pd.DataFrame,
    timezone: str,
    step_minutes: int,
    spec: GridSpec | None = None,
    **kwargs,
) -> Cube:
    """The whole path: align, infer opening hours (unless given), mask dead sensors, densify."""
    aligned = align(readings, timezone, step_minutes)
    spec = spec or GridSpec(step_minutes, infer_open_slots(aligned, step_minutes))
    aligned = mask_dead_sensor(aligned, step_minutes)
    return build_cube(aligned, spec, timezone=timezone, **kwargs)


def lot_rates(
    epoch_ns: np.ndarray,
    occupied: np.ndarray,
    capacity: np.ndarray,
    timezone: str,
    spec: GridSpec,
    first_day: date,
    last_day: date,
) -> np.ndarray:
    """[days, open slots] rates of one lot: readings_to_cube's align -> mask -> densify for a
    single lot in plain numpy (the serving hot path; a test holds the two equal)."""
    n_days = (last_day - first_day).days + 1
    rate = np.full((n_days, spec.slots_per_day), np.nan, dtype=np.float32)
    if len(epoch_ns) == 0:
        return rate
    local_ns = pd.DatetimeIndex(np.asarray(epoch_ns, dtype="int64"), tz="UTC").tz_convert(
        timezone).tz_localize(None).asi8
    day_ns = 86_400_000_000_000
    day = local_ns // day_ns
    slot = nearest_slot((local_ns - day * day_ns) / 60e9, spec.step_minutes)
    rolled = slot >= 1440  # 23:50 on a 30-minute grid is 00:00 of the next day
    day, slot = day + rolled, np.where(rolled, slot - 1440, slot)
    keys, inverse = np.unique(day * 1440 + slot, return_inverse=True)  # sorted by (day, slot)
    counts = np.bincount(inverse)
    mean_occupied = np.bincount(inverse, weights=np.asarray(occupied, dtype=float)) / counts
    max_capacity = np.zeros(len(keys))
    np.maximum.at(max_capacity, inverse, np.asarray(capacity, dtype=float))
    rates = np.clip(mean_occupied / max_capacity, 0.0, 1.0)
    # Dead sensor: one non-zero, non-full count repeated for DEAD_AFTER or longer so far.
    rounded = np.round(mean_occupied)
    new_run = np.r_[True, rounded[1:] != rounded[:-1]]
    starts = np.flatnonzero(new_run)
    run_so_far = np.arange(len(rounded)) - starts[np.cumsum(new_run) - 1] + 1
    min_run = int(DEAD_AFTER / timedelta(minutes=spec.step_minutes))
    rates[(run_so_far >= min_run) & (rounded > 0) & (rounded < max_capacity)] = np.nan
    key_day, key_slot = keys // 1440, keys % 1440
    slot_pos = np.full(1440, -1)
    slot_pos[list(spec.open_slots)] = np.arange(spec.slots_per_day)
    day_idx = key_day - (first_day - date(1970, 1, 1)).days
    keep = (slot_pos[key_slot] >= 0) & (day_idx >= 0) & (day_idx < n_days)
    rate[day_idx[keep], slot_pos[key_slot[keep]]] = rates[keep].astype(np.float32)
    return rate
