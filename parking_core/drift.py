"""Drift of the parking signal, with its daily and weekly seasonality taken out.

The unit of evidence is a day, not a lot-day: lots of one city share the day's weather, events
and trend, so treating 29 lot-days of one Tuesday as 29 independent samples makes any test
miscalibrated (that first design alarmed on 79 % of calm days). Each lot-day becomes the log
ratio of its mean occupancy to the reference profile of the same lot, weekday and time slots
(like is compared with like: a Saturday with Saturdays); the day's statistic is the median
over lots. alibi-detect's KSDrift then compares the new days' statistics with the reference
days', whose own statistics are cross-fitted (each reference week against a profile built
without it, so both samples carry the same noise). A drift must also be big enough to matter:
the median shift has to reach `min_effect`.

The naive test (`seasonal=False`, kept for comparison) runs KS per time slot on raw rates of
lot-days and alarms on every weekend.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np

from parking_core.forecasting.features import Profile
from parking_core.forecasting.grid import Cube

MIN_OBSERVED_SHARE = 0.5  # a lot-day with fewer observed slots carries too little evidence
MIN_LOTS_PER_DAY = 3  # a day statistic needs a few lots to be a median worth the name
MIN_NEW_DAYS = 3  # KS on fewer new days cannot reach a useful p-value
WINDOW_DAYS = 7  # the most recent new days tested: one of each weekday
REFERENCE_DAYS = 21  # three of each weekday
MIN_EFFECT = 0.05  # log ratio, about 5 % occupancy: smaller shifts are left to the forecaster's level adjustment
EPS = 0.02  # keeps the log ratio of a nearly empty lot finite


@dataclass
class FeatureResult:
    name: str
    statistic: float
    p_value: float
    drift: bool
    reference_mean: float
    new_mean: float


@dataclass
class DriftReport:
    detector: str
    seasonal: bool
    p_value: float
    threshold: float  # the p-value threshold of the decision
    statistic: float  # KS distance
    drift: bool
    reference_days: list[str]
    new_days: list[str]
    n_reference: int
    n_new: int
    effect: float = 0.0  # median day statistic, new minus reference (seasonal only)
    min_effect: float = 0.0
    reason: str = ""
    features: list[FeatureResult] = field(default_factory=list)  # per lot (seasonal) or per slot (naive)
    series: dict[str, float] = field(default_factory=dict)  # day -> day statistic, reference and new

    def to_dict(self) -> dict:
        return asdict(self)

    def plot_png(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5))
        if self.series:
            for days, style, label in ((self.reference_days, "o", "reference days"), (self.new_days, "s", "new days")):
                shown = [d for d in days if d in self.series]
                top.plot([date.fromisoformat(d) for d in shown], [self.series[d] for d in shown], style, label=label)
            ref_median = float(np.median([self.series[d] for d in self.reference_days if d in self.series]))
            for sign in (-1, 1):
                top.axhline(ref_median + sign * self.min_effect, color="grey", ls="--", lw=0.8)
            top.set_ylabel("day vs profile (log ratio)")
            top.legend(loc="best", fontsize=8)
            top.tick_params(axis="x", rotation=30, labelsize=7)
        else:
            top.axis("off")
        names = [f.name for f in self.features]
        colors = ["tab:red" if f.drift else "tab:green" for f in self.features]
        bottom.bar(names, [f.new_mean - f.reference_mean for f in self.features], color=colors)
        bottom.axhline(0, color="grey", lw=0.5)
        bottom.set_ylabel("new - reference" + ("" if self.seasonal else " (rate)"))
        bottom.tick_params(axis="x", rotation=70, labelsize=6)
        verdict = "DRIFT" if self.drift else "no drift"
        fig.suptitle(f"{verdict}: p={self.p_value:.2g} (threshold {self.threshold:.2g}), effect {self.effect:+.3f}",
                     fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return buf.getvalue()

    def plot_markdown(self) -> str:
        return f"![drift report](data:image/png;base64,{base64.b64encode(self.plot_png()).decode()})"


def lot_day_deviations(cube: Cube, profile: Profile) -> np.ndarray:
    """[lots, days] log ratio of each lot-day's mean rate to the profile over its observed slots."""
    out = np.full(cube.rate.shape[:2], np.nan)
    for li, lot in enumerate(cube.lots):
        prof = profile.for_lot(lot)
        for di, day in enumerate(cube.days):
            values = cube.rate[li, di]
            observed = ~np.isnan(values)
            if observed.mean() >= MIN_OBSERVED_SHARE:
                expected = prof[day.weekday()][observed].mean()
                out[li, di] = np.log((values[observed].mean() + EPS) / (expected + EPS))
    return out


def cross_fitted_deviations(reference: Cube) -> np.ndarray:
    """Reference deviations, each calendar week against a profile fitted without that week."""
    out = np.full(reference.rate.shape[:2], np.nan)
    n_days = len(reference.days)
    for start in range(0, n_days, 7):  # the cube's days are consecutive: a week is a slice
        stop = min(start + 7, n_days)
        keep = [i for i in range(n_days) if not start <= i < stop]
        if keep:
            profile = Profile.fit(reference.lots, reference.rate[:, keep], [reference.days[i] for i in keep])
        else:  # a single week: nothing to fit on, fall back to in-sample
            profile = Profile.fit(reference.lots, reference.rate, reference.days)
        out[:, start:stop] = lot_day_deviations(reference.day_slice(start, stop), profile)
    return out


def day_statistics(deviations: np.ndarray) -> np.ndarray:
    """[days] median over lots; NaN for a day with too few lots."""
    counts = (~np.isnan(deviations)).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(deviations, axis=0)
    return np.where(counts >= MIN_LOTS_PER_DAY, medians, np.nan)


def _ks(x_ref: np.ndarray, x_new: np.ndarray, p_val: float, correction: str = "bonferroni") -> dict:
    from alibi_detect.cd import KSDrift

    detector = KSDrift(x_ref.astype(np.float32), p_val=p_val, correction=correction)
    # "batch": one decision with the corrected threshold; per-feature p-values come back either way.
    return detector.predict(x_new.astype(np.float32), drift_type="batch", return_p_val=True,
                            return_distance=True)["data"]


def detect_drift(reference: Cube, new: Cube, p_val: float = 0.05, min_effect: float = MIN_EFFECT,
                 seasonal: bool = True) -> DriftReport:
    """Do the new days (the last WINDOW_DAYS of them are used) differ from the reference days?"""
    new = new.day_slice(-WINDOW_DAYS)
    if not seasonal:
        return _naive(reference, new, p_val)
    profile = Profile.fit(reference.lots, reference.rate, reference.days)
    ref_dev, new_dev = cross_fitted_deviations(reference), lot_day_deviations(new, profile)
    ref_stat, new_stat = day_statistics(ref_dev), day_statistics(new_dev)
    ref_ok, new_ok = ~np.isnan(ref_stat), ~np.isnan(new_stat)
    if ref_ok.sum() < 2 * MIN_NEW_DAYS:
        raise ValueError(f"too little reference data for a drift test: {int(ref_ok.sum())} usable days")
    ref_days = [d.isoformat() for d, ok in zip(reference.days, ref_ok, strict=True) if ok]
    new_days = [d.isoformat() for d, ok in zip(new.days, new_ok, strict=True) if ok]
    series = {d: float(v) for d, v in zip(ref_days + new_days, [*ref_stat[ref_ok], *new_stat[new_ok]], strict=True)}
    features = _per_lot(reference, new, ref_dev, new_dev, p_val)
    common = dict(detector="KSDrift (alibi-detect) on day-level deviations from the weekday profile",
                  seasonal=True, threshold=p_val, reference_days=ref_days, new_days=new_days,
                  n_reference=len(ref_days), n_new=len(new_days), min_effect=min_effect, features=features,
                  series=series)
    if len(new_days) < MIN_NEW_DAYS:
        return DriftReport(p_value=1.0, statistic=0.0, drift=False, **common,
                           reason=f"{len(new_days)} usable new day(s): the test waits for {MIN_NEW_DAYS}")
    result = _ks(ref_stat[ref_ok, None], new_stat[new_ok, None], p_val)
    p_value, distance = float(result["p_val"][0]), float(result["distance"][0])
    effect = float(np.median(new_stat[new_ok]) - np.median(ref_stat[ref_ok]))
    significant, large = p_value < p_val, abs(effect) >= min_effect
    reason = (f"KS p={p_value:.3g} {'<' if significant else '>='} {p_val}; median shift {effect:+.3f} "
              f"{'>=' if large else '<'} {min_effect}")
    return DriftReport(p_value=p_value, statistic=distance, drift=significant and large, effect=effect,
                       reason=reason, **common)


def _per_lot(reference: Cube, new: Cube, ref_dev: np.ndarray, new_dev: np.ndarray, p_val: float) -> list:
    """Which lots moved: KS per lot, Bonferroni over lots. Diagnostic; the decision is pooled."""
    out = []
    n_lots = len(new.lots)
    for li, lot in enumerate(new.lots):
        x_new = new_dev[li][~np.isnan(new_dev[li])]
        ri = reference.lots.index(lot) if lot in reference.lots else None
        x_ref = ref_dev[ri][~np.isnan(ref_dev[ri])] if ri is not None else np.empty(0)
        if len(x_new) == 0 or len(x_ref) < 2:
            continue
        result = _ks(x_ref[:, None], x_new[:, None], p_val / n_lots, correction="bonferroni")
        p = float(result["p_val"][0])
        out.append(FeatureResult(lot, float(result["distance"][0]), p, p < p_val / n_lots,
                                 float(x_ref.mean()), float(x_new.mean())))
    return out


def _naive(reference: Cube, new: Cube, p_val: float) -> DriftReport:
    """KS per slot on raw rates of lot-days, Bonferroni over slots: blind to seasonality."""
    x_ref, ref_days = _raw_lot_days(reference)
    x_new, new_days = _raw_lot_days(new)
    if len(x_ref) < 10 or len(x_new) < 1:
        raise ValueError(f"too little data for a drift test: {len(x_ref)} reference and {len(x_new)} new lot-days")
    result = _ks(x_ref, x_new, p_val)
    p_values, distances = np.asarray(result["p_val"], float), np.asarray(result["distance"], float)
    threshold = float(result["threshold"])
    names = [f"{m // 60:02d}:{m % 60:02d}" for m in new.spec.open_slots]
    features = [FeatureResult(name, float(distances[i]), float(p_values[i]), bool(p_values[i] < threshold),
                              float(x_ref[:, i].mean()), float(x_new[:, i].mean())) for i, name in enumerate(names)]
    return DriftReport(detector="KSDrift (alibi-detect), per slot on raw rates, Bonferroni (naive)", seasonal=False,
                       p_value=float(p_values.min()), threshold=threshold, statistic=float(distances.max()),
                       drift=bool(result["is_drift"]), reference_days=ref_days, new_days=new_days,
                       n_reference=len(x_ref), n_new=len(x_new), features=features)


def _raw_lot_days(cube: Cube) -> tuple[np.ndarray, list[str]]:
    rows, days = [], set()
    for li in range(len(cube.lots)):
        for di, day in enumerate(cube.days):
            values = cube.rate[li, di]
            if (~np.isnan(values)).mean() >= MIN_OBSERVED_SHARE:
                rows.append(np.where(np.isnan(values), np.nanmean(values), values))
                days.add(day.isoformat())
    width = cube.spec.slots_per_day
    return (np.stack(rows) if rows else np.empty((0, width))), sorted(days)
