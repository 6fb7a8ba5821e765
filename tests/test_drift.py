"""The drift detector on the Birmingham sample: a calm week passes, the same week with +10 %
occupancy on weekdays alarms, the naive test alarms on a plain Sunday."""

from __future__ import annotations

import json
import logging
from datetime import date

import numpy as np
import pytest
from conftest import SAMPLE_CSV

from parking_core.csv_import import BIRMINGHAM, read_frame
from parking_core.drift import REFERENCE_DAYS, detect_drift
from parking_core.forecasting.grid import readings_to_cube

logging.getLogger("alibi_detect").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def cube():
    frame, _ = read_frame(SAMPLE_CSV, BIRMINGHAM, "Europe/London")
    return readings_to_cube(frame, "Europe/London", 30)


def split(cube, first_new: date, n_new: int = 7):
    start = cube.days.index(first_new)
    return cube.day_slice(start - REFERENCE_DAYS, start), cube.day_slice(start, start + n_new)


def with_weekday_shift(new, shift):
    out = new.day_slice()
    out.rate = out.rate.copy()
    weekdays = [i for i, d in enumerate(new.days) if d.weekday() < 5]
    out.rate[:, weekdays] = np.clip(out.rate[:, weekdays] * (1 + shift), 0, 1)
    return out


def test_a_calm_week_is_not_drift_and_the_same_week_plus_ten_percent_is(cube):
    reference, new = split(cube, date(2016, 11, 7))  # Mon 7 .. Sun 13 Nov, before the Christmas season
    calm = detect_drift(reference, new)
    assert not calm.drift and calm.n_new == 7 and calm.n_reference >= 19
    assert calm.p_value >= 0.05 and abs(calm.effect) < calm.min_effect
    report = json.loads(json.dumps(calm.to_dict()))  # what report.json holds
    assert {"detector", "statistic", "p_value", "threshold", "features", "drift", "reason"} <= set(report)
    assert len(report["features"]) == len(cube.lots) and report["features"][0]["name"] in cube.lots

    drifted = detect_drift(reference, with_weekday_shift(new, 0.10))
    assert drifted.drift and drifted.p_value < 0.05 and drifted.effect >= 0.05
    assert "KS p=" in drifted.reason
    assert drifted.plot_png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_naive_test_alarms_on_a_plain_sunday_ours_does_not(cube):
    reference, _ = split(cube, date(2016, 11, 7))
    week = cube.day_slice(cube.days.index(date(2016, 11, 7)), cube.days.index(date(2016, 11, 14)))
    sunday = week.day_slice(6, 7)
    assert sunday.days == [date(2016, 11, 13)]
    assert detect_drift(reference, sunday, seasonal=False).drift
    assert not detect_drift(reference, week).drift
    # The same window for both (Sat 12 .. Mon 14 Nov, a weekend in it): only the naive test alarms.
    weekend = cube.day_slice(cube.days.index(date(2016, 11, 12)), cube.days.index(date(2016, 11, 15)))
    assert weekend.days == [date(2016, 11, 12), date(2016, 11, 13), date(2016, 11, 14)]
    assert detect_drift(reference, weekend, seasonal=False).drift and not detect_drift(reference, weekend).drift


def test_too_few_new_days_wait_instead_of_deciding(cube):
    reference, new = split(cube, date(2016, 11, 7), n_new=2)
    report = detect_drift(reference, with_weekday_shift(new, 0.3))
    assert not report.drift and report.n_new == 2 and "waits for 3" in report.reason


def test_too_little_reference_is_a_clear_error(cube):
    start = cube.days.index(date(2016, 11, 7))
    with pytest.raises(ValueError, match="too little reference data"):
        detect_drift(cube.day_slice(start - 3, start), cube.day_slice(start, start + 7))
