"""Drift detector on the sample data: false alarms on days without drift, detection of a
synthetic +10 % occupancy shift on weekdays, ours (seasonal) beside the naive test on raw rates.

    .venv/bin/python benchmarks/drift.py [--reference-days 28]

Reference: the first --reference-days days. Every later day with data is tested alone as
"the new day" against it, as the daily pipeline does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parking_core.csv_import import BIRMINGHAM, read_frame  # noqa: E402
from parking_core.drift import detect_drift  # noqa: E402
from parking_core.forecasting.grid import Cube, readings_to_cube  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"


def day_cube(cube: Cube, index: int, shift: float = 0.0) -> Cube:
    day = cube.day_slice(index, index + 1)
    if shift:
        day.rate = np.clip(day.rate * (1 + shift), 0.0, 1.0)
    return day


def main() -> None:
    logging.getLogger("alibi_detect").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-days", type=int, default=28)
    ap.add_argument("--shift", type=float, default=0.10)
    args = ap.parse_args()

    frame, _ = read_frame(SAMPLE, BIRMINGHAM, "Europe/London")
    cube = readings_to_cube(frame, "Europe/London", 30)
    ref = cube.day_slice(0, args.reference_days)
    test_days = [i for i in range(args.reference_days, len(cube.days)) if not np.isnan(cube.rate[:, i]).all()]
    weekdays = [i for i in test_days if cube.days[i].weekday() < 5]

    rows = []
    for seasonal in (True, False):
        alarms = [detect_drift(ref, day_cube(cube, i), seasonal=seasonal).drift for i in test_days]
        weekend_alarms = [a for a, i in zip(alarms, test_days, strict=True) if cube.days[i].weekday() >= 5]
        detected = [detect_drift(ref, day_cube(cube, i, args.shift), seasonal=seasonal).drift for i in weekdays]
        rows.append(("seasonal (ours)" if seasonal else "naive raw rates", np.mean(alarms), np.mean(weekend_alarms),
                     np.mean(detected), len(test_days), len(weekdays)))

    print(f"\nparkcast drift benchmark: reference {cube.days[0]}..{cube.days[args.reference_days - 1]}, "
          f"each later day tested alone; shift +{args.shift:.0%} occupancy on weekdays")
    print(f"{'detector':<18} {'false alarms':>12} {'on weekends':>12} {'detection':>10} {'days':>5} {'weekdays':>9}")
    for name, fa, fa_we, det, n, nw in rows:
        print(f"{name:<18} {fa:>12.1%} {fa_we:>12.1%} {det:>10.1%} {n:>5} {nw:>9}")
    print("targets: false alarms <= 5 % of days, detection >= 90 %")


if __name__ == "__main__":
    main()
