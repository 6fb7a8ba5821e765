"""Baselines, always reported beside the model (and the answer for lots with little history).

All read a lot's [day, slot] history up to the origin only:
- persistence: the last observed rate at or before the origin;
- weekly naive: the rate at the target slot 7 days earlier (14 if that is missing);
- weekly level-adjusted: weekly naive + (rate now - rate at the origin slot a week ago).
A baseline without the data it needs falls back to the next simpler one.
"""

from __future__ import annotations

import numpy as np

BASELINES = ("persistence", "weekly_naive", "weekly_level")


def last_observed(history: np.ndarray, day: int, slot: int) -> float:
    """Latest non-NaN value at or before (day, slot) in a [day, slot] array."""
    flat = history[: day + 1].reshape(-1)[: day * history.shape[1] + slot + 1]
    seen = np.flatnonzero(~np.isnan(flat))
    return float(flat[seen[-1]]) if seen.size else np.nan


def _week_ago(history: np.ndarray, day: int, slot: int) -> float:
    for weeks in (1, 2):
        d = day - 7 * weeks
        if 0 <= d < history.shape[0] and not np.isnan(history[d, slot]):
            return float(history[d, slot])
    return np.nan


def baseline_point_forecasts(history: np.ndarray, day: int, slot: int, horizon: int) -> dict[str, np.ndarray]:
    """p50 of every baseline for steps 1..horizon after (day, slot), along the open slots.

    Steps past the end of the day continue on the next day's first slots.
    """
    slots = history.shape[1]
    now = last_observed(history, day, slot)
    week_now = _week_ago(history, day, slot)
    out = {name: np.full(horizon, np.nan, dtype=np.float32) for name in BASELINES}
    for h in range(1, horizon + 1):
        d, s = divmod(day * slots + slot + h, slots)
        week = _week_ago(history, d, s)
        out["persistence"][h - 1] = now
        out["weekly_naive"][h - 1] = week if not np.isnan(week) else now
        if np.isnan(week):
            level = now
        elif np.isnan(week_now) or np.isnan(now):
            level = week
        else:
            level = week + (now - week_now)
        out["weekly_level"][h - 1] = level
    for name in BASELINES:
        out[name] = np.clip(out[name], 0.0, 1.0)
    return out
