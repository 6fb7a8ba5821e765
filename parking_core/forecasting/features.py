"""Model inputs from the grid, torch-free: training, backtest and serving all call this.

A lot's history is a [day, slot] array of rates (NaN = missing). Inputs never read past the
forecast origin: the callers hand over history truncated at the origin, and every lag a
decoder step uses lies at least one day back, which is at or before the origin as long as
the horizon is at most one day of slots (enforced).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

KNOWN_REALS = ["tod", "dow_sin", "dow_cos", "profile", "lag_day", "lag_week", "lag_2week"]
UNKNOWN_REALS = ["rate", "delta", "observed", "resid"]
# Every training sample is one forecast origin. Origin-relative inputs: the level now and its
# gap to last week / yesterday at the same slot, the last step's change; per step, the weekly
# and daily level-adjusted forecasts. The target is the correction to the weekly
# level-adjusted forecast, so "predict 0" is that (strong) baseline and the network learns
# only what it adds.
ORIGIN_STATIC_REALS = ["now", "diff_week", "diff_2week", "diff_day", "momentum"]
ORIGIN_KNOWN_REALS = ["level_week", "level_2week", "level_day", "anchor"]
TARGET = "resid"
STATIC_REALS = ["log_capacity"]
KNOWN_CATEGORICALS = ["dow", "holiday"]
STATIC_CATEGORICALS = ["lot_id"]


@dataclass
class Profile:
    """Mean rate per lot, weekday and slot over the training days; the imputation of last resort."""

    lots: list[str]
    by_lot: np.ndarray  # [n_lots, 7, S]
    overall: np.ndarray  # [7, S]

    @classmethod
    def fit(cls, lots: list[str], rate: np.ndarray, days: list[date]) -> Profile:
        dows = np.array([d.weekday() for d in days])
        n_lots, _, slots = rate.shape
        by_lot = np.full((n_lots, 7, slots), np.nan, dtype=np.float32)
        # nanmean of an all-NaN block warns; the fallbacks below handle it.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for dow in range(7):
                block = rate[:, dows == dow, :]
                if block.shape[1]:
                    by_lot[:, dow, :] = np.nanmean(block, axis=1)
            overall = np.nanmean(by_lot, axis=0)
            # Fall back: weekday unseen for a lot -> that lot's all-week mean -> everyone's mean.
            lot_mean = np.nanmean(by_lot, axis=1, keepdims=True)
            by_lot = np.where(np.isnan(by_lot), lot_mean, by_lot)
            by_lot = np.where(np.isnan(by_lot), overall[None], by_lot)
        overall = np.where(np.isnan(overall), 0.5, overall)
        by_lot = np.where(np.isnan(by_lot), 0.5, by_lot)
        return cls(lots=list(lots), by_lot=by_lot.astype(np.float32), overall=overall.astype(np.float32))

    def for_lot(self, lot_id: str) -> np.ndarray:
        """[7, S] profile; an unseen lot gets the overall one."""
        if lot_id in self.lots:
            return self.by_lot[self.lots.index(lot_id)]
        return self.overall

    def to_dict(self) -> dict:
        return {"lots": self.lots, "by_lot": self.by_lot.round(6).tolist(), "overall": self.overall.round(6).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        return cls(
            lots=list(d["lots"]),
            by_lot=np.asarray(d["by_lot"], dtype=np.float32),
            overall=np.asarray(d["overall"], dtype=np.float32),
        )


def fill_days(rate: np.ndarray, dows: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Impute NaN with last week's (already filled) value, else the weekday profile. Past-only."""
    filled = rate.astype(np.float32, copy=True)
    for d in range(filled.shape[0]):
        gap = np.isnan(filled[d])
        if gap.any():
            fallback = filled[d - 7] if d >= 7 else profile[dows[d]]
            filled[d, gap] = fallback[gap]
    return filled


def lot_features(
    lot_id: str,
    capacity: float,
    rate: np.ndarray,
    days: list[date],
    profile: Profile,
    holidays: set[date],
) -> dict[str, np.ndarray]:
    """Feature columns for every position of one lot's [day, slot] history (flattened day-major).

    `rate` may end with days whose later slots are NaN (after the origin) or are all NaN
    (days the decoder reaches into); their `rate` inputs are imputations and `observed` is 0.
    """
    n_days, slots = rate.shape
    dows = np.array([d.weekday() for d in days])
    prof = profile.for_lot(lot_id)
    filled = fill_days(rate, dows, prof)

    def lag(k_days: int) -> np.ndarray:
        out = np.empty_like(filled)
        if n_days > k_days:  # a history shorter than the lag has nothing to shift
            out[k_days:] = filled[: n_days - k_days]
        # Before the history starts: the profile of that weekday stands in.
        for d in range(min(k_days, n_days)):
            out[d] = prof[(dows[d] - k_days) % 7]
        return out

    dow_grid = np.repeat(dows[:, None], slots, axis=1)
    tod = np.broadcast_to(np.linspace(0.0, 1.0, slots, dtype=np.float32), (n_days, slots))
    angle = 2 * np.pi * dow_grid / 7.0
    hol = np.array([d in holidays for d in days])
    lag_week = lag(7).reshape(-1)
    return {
        "tod": tod.reshape(-1).astype(np.float32),
        "dow_sin": np.sin(angle).reshape(-1).astype(np.float32),
        "dow_cos": np.cos(angle).reshape(-1).astype(np.float32),
        "profile": prof[dow_grid, np.arange(slots)[None, :]].reshape(-1).astype(np.float32),
        "lag_day": lag(1).reshape(-1),
        "lag_week": lag_week,
        "lag_2week": lag(14).reshape(-1),
        "rate": filled.reshape(-1),
        "delta": filled.reshape(-1) - lag_week,
        "observed": (~np.isnan(rate)).reshape(-1).astype(np.float32),
        "log_capacity": np.full(n_days * slots, np.log(max(capacity, 1.0)) / 10.0, dtype=np.float32),
        "dow": dow_grid.reshape(-1).astype(str),
        "holiday": np.repeat(hol, slots).astype(int).astype(str),
    }


def origin_features(feats: dict[str, np.ndarray], origins: np.ndarray, encoder_length: int, horizon: int
                    ) -> dict[str, np.ndarray]:
    """Row features of the windows around each origin, plus the origin-relative ones.

    Returns arrays [n_origins, encoder_length + horizon]. Everything origin-relative is read
    at positions <= origin.
    """
    origins = np.asarray(origins)
    idx = origins[:, None] + np.arange(1 - encoder_length, horizon + 1)[None, :]
    rate, delta, lag_day = feats["rate"], feats["delta"], feats["lag_day"]
    now = rate[origins]
    diff_week = delta[origins]
    diff_day = now - lag_day[origins]
    diff_2week = now - feats["lag_2week"][origins]
    momentum = now - rate[np.maximum(origins - 1, 0)]
    out = {name: values[idx] for name, values in feats.items() if name not in ("dow", "holiday")}
    out["dow"] = feats["dow"][idx]
    out["holiday"] = feats["holiday"][idx]
    width = idx.shape[1]
    for name, value in (("now", now), ("diff_week", diff_week), ("diff_2week", diff_2week), ("diff_day", diff_day),
                        ("momentum", momentum)):
        out[name] = np.repeat(value[:, None], width, axis=1).astype(np.float32)
    out["level_week"] = (out["lag_week"] + diff_week[:, None]).astype(np.float32)
    out["level_day"] = (out["lag_day"] + diff_day[:, None]).astype(np.float32)
    out["level_2week"] = (out["lag_2week"] + diff_2week[:, None]).astype(np.float32)
    # The anchor the network corrects: the mean of the level-adjusted forecasts from one and
    # two weeks back (steadier than either alone).
    out["anchor"] = (0.5 * (out["level_week"] + out["level_2week"])).astype(np.float32)
    out["resid"] = (out["rate"] - out["anchor"]).astype(np.float32)
    out["time_idx"] = idx
    return out


def holiday_dates(country: str, subdiv: str | None, years: range) -> set[date]:
    import holidays as holidays_lib

    return set(holidays_lib.country_holidays(country, subdiv=subdiv, years=list(years)).keys())


def holiday_region(timezone: str) -> tuple[str | None, str | None]:
    """(country, subdivision) whose public holidays a lot in `timezone` keeps: England for
    Europe/London (Birmingham), else the country the tz database names for the zone, else none."""
    if timezone == "Europe/London":
        return "GB", "ENG"
    try:
        from importlib.resources import files

        table = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        return None, None
    for line in table.splitlines():
        parts = line.split("\t")
        if not line.startswith("#") and len(parts) >= 3 and parts[2] == timezone:
            return parts[0], None
    return None, None


def training_holidays(days: list[date], country: str | None, subdiv: str | None, timezone: str) -> set[date]:
    """Public holidays over the training days and five years on (serving reads them from the
    package). country "auto": from the lots' timezone (holiday_region); "" or None: none."""
    if country == "auto":
        country, subdiv = holiday_region(timezone)
    if not country:
        return set()
    try:
        return holiday_dates(country, subdiv, range(days[0].year - 1, days[-1].year + 6))
    except NotImplementedError:  # a country the holidays package does not know
        return set()


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
