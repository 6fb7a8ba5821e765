"""Drift of the parking signal, with its daily and weekly seasonality taken out.

Each lot-day becomes a vector over the open slots of its deviation from the reference profile
of the same lot, weekday and slot. A Kolmogorov-Smirnov test per slot (alibi-detect KSDrift,
Bonferroni-corrected) compares the new days' deviations with the reference days'. So a
Saturday is compared with what Saturdays looked like, not with Tuesdays: the naive test on raw
rates (`seasonal=False`, kept for comparison) alarms on every weekend.
"""

from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np

from parking_core.forecasting.features import Profile
from parking_core.forecasting.grid import Cube

MIN_OBSERVED_SHARE = 0.5  # a lot-day with fewer observed slots carries too little evidence


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
    p_value: float  # smallest per-slot p-value
    threshold: float  # per-slot threshold after the Bonferroni correction
    statistic: float  # largest per-slot KS distance
    drift: bool
    reference_days: list[str]
    new_days: list[str]
    n_reference: int
    n_new: int
    features: list[FeatureResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def plot_png(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [f.name for f in self.features]
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
        top.plot(names, [f.reference_mean for f in self.features], "o-", label="reference days")
        top.plot(names, [f.new_mean for f in self.features], "s-", label="new days")
        top.axhline(0, color="grey", lw=0.5)
        top.set_ylabel("deviation from profile" if self.seasonal else "occupancy rate")
        top.legend(loc="best", fontsize=8)
        colors = ["tab:red" if f.drift else "tab:green" for f in self.features]
        bottom.bar(names, [max(f.p_value, 1e-12) for f in self.features], color=colors)
        bottom.axhline(self.threshold, color="black", ls="--", lw=1, label=f"threshold {self.threshold:.4f}")
        bottom.set_yscale("log")
        bottom.set_ylabel("KS p-value")
        bottom.legend(loc="best", fontsize=8)
        bottom.tick_params(axis="x", rotation=60, labelsize=7)
        verdict = "DRIFT" if self.drift else "no drift"
        days = ", ".join(self.new_days[:3]) + ("..." if len(self.new_days) > 3 else "")
        fig.suptitle(f"{self.detector}: {verdict} ({days})")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return buf.getvalue()

    def plot_markdown(self) -> str:
        return f"![drift report](data:image/png;base64,{base64.b64encode(self.plot_png()).decode()})"


def lot_day_vectors(cube: Cube, profile: Profile | None) -> tuple[np.ndarray, list[tuple[str, date]]]:
    """[n lot-days, slots]: deviation from the profile (or the raw rate when profile is None)."""
    rows, keys = [], []
    for li, lot in enumerate(cube.lots):
        prof = profile.for_lot(lot) if profile is not None else None
        for di, day in enumerate(cube.days):
            values = cube.rate[li, di]
            observed = ~np.isnan(values)
            if observed.mean() < MIN_OBSERVED_SHARE:
                continue
            if prof is not None:
                values = values - prof[day.weekday()]
                values = np.where(observed, values, 0.0)  # no evidence either way
            else:
                values = np.where(observed, values, np.nanmean(values))
            rows.append(values.astype(np.float32))
            keys.append((lot, day))
    width = cube.spec.slots_per_day
    return (np.stack(rows) if rows else np.empty((0, width), dtype=np.float32)), keys


def detect_drift(reference: Cube, new: Cube, p_val: float = 0.05, seasonal: bool = True) -> DriftReport:
    from alibi_detect.cd import KSDrift

    profile = Profile.fit(reference.lots, reference.rate, reference.days) if seasonal else None
    x_ref, ref_keys = lot_day_vectors(reference, profile)
    x_new, new_keys = lot_day_vectors(new, profile)
    if len(x_ref) < 10 or len(x_new) < 1:
        raise ValueError(f"too little data for a drift test: {len(x_ref)} reference and {len(x_new)} new lot-days")
    detector = KSDrift(x_ref, p_val=p_val, correction="bonferroni")
    # "batch": one decision with the Bonferroni-corrected threshold (the "feature" mode would
    # test each slot at the uncorrected level); per-slot p-values come back either way.
    result = detector.predict(x_new, drift_type="batch", return_p_val=True, return_distance=True)["data"]
    p_values = np.asarray(result["p_val"], dtype=float)
    distances = np.asarray(result["distance"], dtype=float)
    threshold = float(result["threshold"])
    names = [f"{m // 60:02d}:{m % 60:02d}" for m in new.spec.open_slots]
    features = [
        FeatureResult(name, float(distances[i]), float(p_values[i]), bool(p_values[i] < threshold),
                      float(x_ref[:, i].mean()), float(x_new[:, i].mean()))
        for i, name in enumerate(names)
    ]
    return DriftReport(
        detector="KSDrift (alibi-detect), per slot, Bonferroni" + ("" if seasonal else ", raw rates (naive)"),
        seasonal=seasonal,
        p_value=float(p_values.min()),
        threshold=threshold,
        statistic=float(distances.max()),
        drift=bool(result["is_drift"]),
        reference_days=sorted({d.isoformat() for _, d in ref_keys}),
        new_days=sorted({d.isoformat() for _, d in new_keys}),
        n_reference=len(x_ref),
        n_new=len(x_new),
        features=features,
    )
