"""Drift detector on the sample data: false alarms on days without drift, detection of a
synthetic +10 % occupancy shift on weekdays, ours (seasonal) beside the naive test on raw rates.

    .venv/bin/python benchmarks/drift.py [--reference-days 21] [--window-days 7] [--shift 0.10]

Protocol, as the daily pipeline runs right after a consolidation: for every day with data, the
new days are the window ending on it and the reference is the days just before the window.

The sample holds a real drift: from 19 Nov 2016 the pre-Christmas season lifts weekday
occupancy by about 6 % and weekends by about 25 % over the weeks before (the script prints the levels).
False alarms are counted on windows that end before it ("calm"); alarms on windows that end in
it are printed as their own column, as they are right to alarm. Detection injects the shift
into the weekdays of the calm windows.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parking_core.csv_import import BIRMINGHAM, read_frame  # noqa: E402
from parking_core.drift import cross_fitted_deviations, day_statistics, detect_drift  # noqa: E402
from parking_core.forecasting.grid import Cube, readings_to_cube  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"
SEASON_STARTS = date(2016, 11, 19)


def shifted(cube: Cube, shift: float) -> Cube:
    out = cube.day_slice()
    out.rate = out.rate.copy()
    weekdays = np.array([d.weekday() < 5 for d in cube.days])
    out.rate[:, weekdays] = np.clip(out.rate[:, weekdays] * (1 + shift), 0.0, 1.0)
    return out


def season_levels(cube: Cube) -> str:
    """Median day statistic (cross-fitted over the whole sample) per period and day type."""
    stat = day_statistics(cross_fitted_deviations(cube))
    parts = []
    for name, keep in (("calm", lambda d: d < SEASON_STARTS), ("from 19 Nov", lambda d: d >= SEASON_STARTS)):
        for kind, is_kind in (("weekdays", lambda d: d.weekday() < 5), ("weekends", lambda d: d.weekday() >= 5)):
            values = [s for d, s in zip(cube.days, stat, strict=True) if keep(d) and is_kind(d) and not np.isnan(s)]
            parts.append(f"{name} {kind} {np.median(values):+.3f}")
    return ", ".join(parts)


def main() -> None:
    logging.getLogger("alibi_detect").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-days", type=int, default=21)
    ap.add_argument("--window-days", type=int, default=7)
    ap.add_argument("--shift", type=float, default=0.10)
    args = ap.parse_args()

    frame, _ = read_frame(SAMPLE, BIRMINGHAM, "Europe/London")
    cube = readings_to_cube(frame, "Europe/London", 30)
    ends = [i for i in range(args.reference_days + args.window_days - 1, len(cube.days))
            if not np.isnan(cube.rate[:, i]).all()]

    def decide(end: int, seasonal: bool, window: int, shift: float = 0.0) -> bool:
        start = end - window + 1
        reference = cube.day_slice(start - args.reference_days, start)
        new = cube.day_slice(start, end + 1)
        return detect_drift(reference, shifted(new, shift) if shift else new, seasonal=seasonal).drift

    calm = [i for i in ends if cube.days[i] < SEASON_STARTS]
    season = [i for i in ends if cube.days[i] >= SEASON_STARTS]
    rows = []
    for name, seasonal, window in (("seasonal (ours)", True, args.window_days),
                                   ("naive raw rates", False, args.window_days),
                                   ("naive, one day", False, 1)):
        rows.append((name, np.mean([decide(i, seasonal, window) for i in calm]),
                     np.mean([decide(i, seasonal, window, args.shift) for i in calm]),
                     np.mean([decide(i, seasonal, window) for i in season]), window))

    print(f"\nparkcast drift benchmark: {len(calm)} calm windows ending {cube.days[calm[0]]}..{cube.days[calm[-1]]}, "
          f"{len(season)} ending in the pre-Christmas season; reference {args.reference_days} days before each window")
    print(f"day statistic vs profile: {season_levels(cube)}")
    print(f"{'detector':<17} {'window':>6} {'false alarms':>13} {f'detect +{args.shift:.0%}':>12} "
          f"{'alarms in season':>17}")
    for name, fa, det, season_alarms, window in rows:
        print(f"{name:<17} {window:>5}d {fa:>13.1%} {det:>12.1%} {season_alarms:>17.1%}")
    print("targets: false alarms <= 5 % of days, detection >= 90 %")


if __name__ == "__main__":
    main()
