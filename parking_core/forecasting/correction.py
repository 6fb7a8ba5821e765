"""The correction forecaster: a gradient-boosted model of what the weekly level-adjusted
forecast (the anchor) gets wrong, blended with the anchor per horizon and banded by conformal
P10/P90, all learned on rolling-origin folds (correction_training.py). This module is what
serving needs: numpy to build the inputs, onnxruntime to run the trees (model.onnx).

Every input of an origin (lot, day o, slot s) reads the grid at or before (o, s) only, and at
most LOOKBACK_DAYS days back, so a forecast from the full training grid and one from a served
request (history cut at the origin, HISTORY_DAYS long) are the same numbers. Tests hold both
bit for bit: inputs from the grid against inputs from a served request, and inputs (and
backtest forecasts) before and after the raw readings after an origin are rewritten.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from parking_core.forecasting.features import Profile
from parking_core.forecasting.windows import ForecastRequest

LOOKBACK_DAYS = 21  # deepest read: the 2-week lag's fallback, three weeks before the origin's day
QUANTILE_LEVELS = (0.1, 0.9)
QUANT = 128  # inputs live on a grid of 1 / QUANT in [-1, 1] (see the end of design)

FEATURES = [
    "anchor", "now_gap", "level_2week_gap", "level_day_gap", "level_3week_gap", "level_median_gap",
    "today_level_gap", "recent_level_gap", "momentum", "weekly_growth", "week_ago_unusual", "unusual_x_median",
    "unusual_x_now", "now_missing", "week_missing",
    "holiday", "holiday_week_ago",
    "tod_sin", "tod_cos", "tod_sin2", "tod_cos2",
    *[f"dow_{i}" for i in range(7)],
    "point_gap", "week_shape", "ratio_gap", "slope_1h", "past_days_gap", "week_now_vs_median",
    "week_target_bump", "week_now_bump", "two_week_target_diff",
]


@dataclass
class Design:
    """Inputs of a batch of origins: x [N, H, F], the anchor [N, H], and whether each step lies
    on the origin's day [N, H] (the model corrects same-day steps; later ones keep the anchor)."""

    x: np.ndarray
    anchor: np.ndarray
    same_day: np.ndarray
    target_day: np.ndarray  # [N, H] day index of each step's target
    target_slot: np.ndarray  # [N, H]


def gather(hist: np.ndarray, lot: np.ndarray, day: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """hist[lot, day, slot] with NaN where the day lies outside the array."""
    ok = (day >= 0) & (day < hist.shape[1])
    out = hist[lot, np.where(ok, day, 0), slot]
    return np.where(ok, out, np.nan)


def _holiday_at(holiday: np.ndarray, lot: np.ndarray, day: np.ndarray) -> np.ndarray:
    return np.where(day >= 0, holiday[lot, np.clip(day, 0, holiday.shape[1] - 1)], False)


def _weekly(hist, holiday, lot, day, slot):
    """The same slot a week before `day`; two weeks when that is missing or a public holiday
    (and the holiday's own value when nothing else is there)."""
    w1 = gather(hist, lot, day - 7, slot)
    w2 = gather(hist, lot, day - 14, slot)
    usable1 = ~np.isnan(w1) & ~_holiday_at(holiday, lot, day - 7)
    usable2 = ~np.isnan(w2) & ~_holiday_at(holiday, lot, day - 14)
    return np.where(usable1, w1, np.where(usable2, w2, w1))


def design(
    hist: np.ndarray,
    dows: np.ndarray,
    holiday: np.ndarray,
    profile: np.ndarray,
    lot: np.ndarray,
    origin_day: np.ndarray,
    origin_slot: np.ndarray,
    horizon: int,
) -> Design:
    """Inputs for origins (lot[i], origin_day[i], origin_slot[i]) of hist [L, D, S].

    dows, holiday: [L, D + 1] weekday and public-holiday flag of each day (one day past the end,
    for steps that reach into the next day); profile: [L, 7, S] weekday profile of each lot
    (the last resort when a lot has no history at all). Reads only positions at or before each
    origin and at most LOOKBACK_DAYS back.
    """
    _, _, slots = hist.shape
    n = len(lot)
    lot, o, s = (np.asarray(a, dtype=np.int64) for a in (lot, origin_day, origin_slot))
    steps = np.arange(1, horizon + 1)[None, :]
    flat_target = s[:, None] + steps
    tday = o[:, None] + flat_target // slots
    tslot = flat_target % slots
    same_day = tday == o[:, None]
    L2 = np.repeat(lot[:, None], horizon, axis=1)
    last = dows.shape[1] - 1
    dow_t = dows[L2, np.clip(tday, 0, last)]

    now = gather(hist, lot, o, s)
    # Last observation at or before the origin within the origin's day and the day before.
    for back in range(1, slots + 1):
        gap = np.isnan(now)
        if not gap.any():
            break
        pos = o * slots + s - back
        prev = gather(hist, lot, pos // slots, pos % slots)
        prev = np.where(pos // slots >= o - 1, prev, np.nan)
        now = np.where(gap, prev, now)
    week_now = _weekly(hist, holiday, lot, o, s)
    week_t = _weekly(hist, holiday, L2, tday, tslot)
    prof_t = profile[L2, dow_t, tslot]
    
    now2 = now[:, None]
    anchor = np.where(np.isnan(week_t), now2, week_t + (now - week_now)[:, None])
    anchor = np.where(np.isnan(anchor), week_t, anchor)
    anchor = np.where(np.isnan(anchor), prof_t, anchor)
    anchor = np.clip(anchor, 0.0, 1.0)

    def level(lagged_t, lagged_now):
        value = lagged_t + (now - lagged_now)[:, None]
        return np.where(np.isnan(value), anchor, value) - anchor

    two_t = gather(hist, L2, tday - 14, tslot)
    two_t = np.where(np.isnan(two_t), gather(hist, L2, tday - 21, tslot), two_t)
    two_now = gather(hist, lot, o - 14, s)
    two_now = np.where(np.isnan(two_now), gather(hist, lot, o - 21, s), two_now)
    day_t, day_now = gather(hist, L2, tday - 1, tslot), gather(hist, lot, o - 1, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # The mean of the same weekday over the last three weeks (steadier than one week).
        three_t = np.nanmean([gather(hist, L2, tday - 7 * k, tslot) for k in (1, 2, 3)], axis=0)
        three_now = np.nanmean([gather(hist, lot, o - 7 * k, s) for k in (1, 2, 3)], axis=0)
        # ...and their median: one unusual week (a school holiday) does not move it.
        med_t = np.nanmedian([gather(hist, L2, tday - 7 * k, tslot) for k in (1, 2, 3)], axis=0)
        med_now = np.nanmedian([gather(hist, lot, o - 7 * k, s) for k in (1, 2, 3)], axis=0)

    # Today's level against the same weekday's, over every slot seen so far today (and the last
    # three): steadier than the one-slot gap the anchor uses.
    all_slots = np.arange(slots)[None, :]
    seen = all_slots <= s[:, None]
    today = np.where(seen, hist[lot, np.clip(o, 0, None)], np.nan)
    today = np.where((o >= 0)[:, None], today, np.nan)
    week_today = _weekly(hist, holiday, np.repeat(lot[:, None], slots, 1), np.repeat(o[:, None], slots, 1),
                         np.repeat(all_slots, n, 0))
    gaps = today - week_today
    recent = np.where(all_slots > (s[:, None] - 3), gaps, np.nan)
    point_gap = now - week_now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        today_gap = np.nanmean(gaps, axis=1) - point_gap
        recent_gap = np.nanmean(recent, axis=1) - point_gap
        # Growth week on week over the seven days before today (all slots).
        week_days = o[:, None] - np.arange(1, 8)[None, :]
        blocks = hist[lot[:, None], np.clip(week_days, 0, None)]
        earlier = hist[lot[:, None], np.clip(week_days - 7, 0, None)]
        valid = (week_days - 7 >= 0)[..., None]
        growth = np.nanmean(np.where(valid, blocks - earlier, np.nan).reshape(n, -1), axis=1)
        # How far the target's week-ago day (a whole past day) strayed from the median of the
        # same weekday over three weeks: large after a school holiday or an event, when the
        # anchor should be trusted less.
        day_means = [np.nanmean(np.where((tday - 7 * k >= 0)[..., None],
                                         hist[L2, np.clip(tday - 7 * k, 0, None)], np.nan), axis=-1)
                     for k in (1, 2, 3)]
        unusual = np.abs(day_means[0] - np.nanmedian(day_means, axis=0))
    unusual = np.nan_to_num(unusual, nan=0.0)
    momentum = now - gather(hist, lot, o, s - 1) if slots > 1 else np.zeros(n)
    momentum = np.where(s >= 1, momentum, np.nan)
    slope = np.where(s >= 2, now - gather(hist, lot, o, s - 2), np.nan)
    # The level gap at the origin's slot on each of the last three days (against their own week
    # ago): a lot that has run above its week-ago level for days will likely stay there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        past_gaps = np.nanmean([gather(hist, lot, o - k, s) - _weekly(hist, holiday, lot, o - k, s) for k in (1, 2, 3)],
                               axis=0)
    # Multiplicative level: week_t * now / week_now (bounded), against the additive anchor.
    ratio = np.clip(now / np.maximum(week_now, 0.05), 0.0, 3.0)
    ratio_gap = np.clip(week_t * ratio[:, None], 0.0, 1.0) - anchor

    def bump(lot_, day_, slot_):
        """How far a week-ago reading stands out from its neighbours' mean (a noisy reading)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            neighbours = np.nanmean([gather(hist, lot_, day_ - 7, np.clip(slot_ + k, 0, slots - 1)) for k in (-1, 1)],
                                    axis=0)
        return gather(hist, lot_, day_ - 7, slot_) - neighbours

    minutes = tslot / slots
    hol_t = _holiday_at(holiday, L2, tday)
    hol_week = _holiday_at(holiday, L2, tday - 7)

    def per_origin(v):
        return np.repeat(np.nan_to_num(v, nan=0.0)[:, None], horizon, axis=1)

    columns = [
        anchor,
        np.where(np.isnan(now2), 0.0, now2 - anchor),
        level(two_t, two_now), level(day_t, day_now), level(three_t, three_now), level(med_t, med_now),
        per_origin(today_gap), per_origin(recent_gap), per_origin(momentum), per_origin(growth),
        unusual, unusual * level(med_t, med_now), unusual * np.where(np.isnan(now2), 0.0, now2 - anchor),
        per_origin(np.isnan(now).astype(float)), np.isnan(week_t).astype(float),
        hol_t.astype(float), hol_week.astype(float),
        np.sin(2 * np.pi * minutes), np.cos(2 * np.pi * minutes),
        np.sin(4 * np.pi * minutes), np.cos(4 * np.pi * minutes),
        *[(dow_t == i).astype(float) for i in range(7)],
        per_origin(point_gap), week_t - week_now[:, None], ratio_gap, per_origin(slope), per_origin(past_gaps),
        per_origin(week_now - med_now),
        bump(L2, tday, tslot), per_origin(bump(lot, o, s)), two_t - week_t,
    ]
    x = np.nan_to_num(np.stack(columns, axis=-1), nan=0.0)
    # Inputs on a grid of 1/128 in [-1, 1]: at most 255 distinct values per input, so the trees'
    # binning is exact (and fast, with sample weights), and every split threshold is a float32
    # midpoint that training, scikit-learn and onnxruntime compare alike.
    x = np.clip(np.round(x * QUANT), -QUANT + 1, QUANT - 1) / QUANT
    return Design(x.astype(np.float32), anchor.astype(np.float32), same_day, tday, tslot)




def calendar(days: list[date], holidays: set[date]) -> tuple[np.ndarray, np.ndarray]:
    """Weekday and holiday flag of each day and of the day after the last: [D + 1] each."""
    extended = [*days, days[-1] + timedelta(days=1)]
    return (np.array([d.weekday() for d in extended]), np.array([d in holidays for d in extended]))


def request_design(requests: Sequence[ForecastRequest], profile: Profile, holidays: set[date],
                   horizon: int) -> Design:
    """The inputs of served requests: each request's last LOOKBACK_DAYS + 1 days (and the next,
    blank, for steps past its day), stacked as one lot each."""
    window = LOOKBACK_DAYS + 2
    slots = requests[0].history.shape[1]
    hist = np.full((len(requests), window, slots), np.nan, dtype=np.float32)
    dows = np.zeros((len(requests), window + 1), dtype=np.int64)
    holiday = np.zeros((len(requests), window + 1), dtype=bool)
    prof = np.empty((len(requests), 7, slots), dtype=np.float32)
    for i, r in enumerate(requests):
        first = r.origin_day - LOOKBACK_DAYS
        rows = r.history[max(first, 0): r.origin_day + 2]
        hist[i, max(-first, 0): max(-first, 0) + len(rows)] = rows
        day0 = r.days[0] + timedelta(days=first)
        dows[i], holiday[i] = calendar([day0 + timedelta(days=k) for k in range(window)], holidays)
        prof[i] = profile.for_lot(r.lot_id)
    n = len(requests)
    return design(hist, dows, holiday, prof, np.arange(n), np.full(n, LOOKBACK_DAYS),
                  np.array([r.origin_slot for r in requests]), horizon)


def flat_inputs(d: Design) -> np.ndarray:
    """[N * H, F + 1] rows for the trees: the inputs of each step and the step number."""
    n, horizon, _ = d.x.shape
    steps = np.broadcast_to(np.arange(horizon, dtype=np.float32)[None, :, None], (n, horizon, 1))
    return np.ascontiguousarray(np.concatenate([d.x, steps], axis=-1).reshape(n * horizon, -1))


@dataclass
class Blend:
    """How the correction is used: p50 = anchor + weight[h] * correction on same-day steps
    (the anchor alone after the origin's day), and the conformal band around p50."""

    weight: np.ndarray  # [H]
    offsets: np.ndarray  # [H, 2]: 10 % and 90 % quantiles of actual - p50

    def quantiles(self, d: Design, correction: np.ndarray) -> np.ndarray:
        p50 = np.clip(d.anchor + np.where(d.same_day, self.weight[None, :] * correction, 0.0), 0.0, 1.0)
        out = np.stack([p50 + self.offsets[:, 0], p50, p50 + self.offsets[:, 1]], axis=-1)
        return np.clip(np.sort(out, axis=-1), 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict:
        return {"weight": [round(float(w), 6) for w in self.weight],
                "offsets": [[round(float(v), 6) for v in row] for row in self.offsets]}

    @classmethod
    def from_dict(cls, d: dict) -> Blend:
        return cls(np.asarray(d["weight"], np.float32), np.asarray(d["offsets"], np.float32))


def conformal_offsets(residual: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[H, 2]: the 10 % and 90 % quantiles of actual - p50 per step (pooled when a step has few)."""
    horizon = residual.shape[1]
    pooled = residual[mask]
    out = np.zeros((horizon, 2), np.float32)
    for h in range(horizon):
        r = residual[mask[:, h], h]
        r = r if len(r) >= 50 else pooled
        if len(r):
            out[h] = np.quantile(r, QUANTILE_LEVELS)
    return out
