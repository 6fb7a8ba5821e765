"""The time grid on the real Birmingham file's quirks, and on synthetic 24-hour lots."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE_CSV

from parking_core.csv_import import BIRMINGHAM, read_frame
from parking_core.forecasting.grid import GridSpec, align, infer_open_slots, nearest_slot, readings_to_cube


@pytest.fixture(scope="module")
def frame():
    readings, _ = read_frame(SAMPLE_CSV, BIRMINGHAM, "Europe/London")
    return readings


@pytest.fixture(scope="module")
def cube(frame):
    return readings_to_cube(frame, "Europe/London", 30)


def test_nearest_point():
    minutes = np.array([8 * 60 + 25 + 42 / 60, 7 * 60 + 59 + 42 / 60, 8 * 60 + 14.9, 8 * 60 + 15])
    assert nearest_slot(minutes, 30).tolist() == [510, 480, 480, 510]


def test_several_readings_on_one_point_are_averaged():
    t = datetime(2016, 11, 1, 8, 0, tzinfo=UTC)
    readings = pd.DataFrame(
        {"lot_id": ["A"] * 3, "observed_at": [t - timedelta(minutes=5), t, t + timedelta(minutes=10)],
         "occupied": [10, 20, 60], "capacity": [100] * 3}
    )
    out = align(readings, "UTC", 30)
    assert len(out) == 1 and out["rate"].iloc[0] == pytest.approx(0.3) and out["n"].iloc[0] == 3


def test_opening_hours_are_inferred_and_nothing_invented(frame, cube):
    assert cube.spec.open_slots == tuple(range(8 * 60, 16 * 60 + 31, 30))
    aligned = align(frame, "Europe/London", 30)
    # 07:44-ish readings round to 07:30, outside the hours: dropped, not a new slot.
    assert (aligned["slot"] == 450).sum() > 0 and 450 not in infer_open_slots(aligned, 30)
    assert cube.rate.shape == (29, 63, 18)


def test_missing_days_stay_missing(cube):
    for day in (date(2016, 10, 20), date(2016, 10, 21), date(2016, 12, 3), date(2016, 12, 4)):
        assert np.isnan(cube.rate[:, cube.day_index(day)]).all()


def test_rates_are_clipped_and_timezone_applied(cube):
    assert np.nanmax(cube.rate) == 1.0 and np.nanmin(cube.rate) >= 0.0
    li = cube.lot_index("BHMBCCMKT01")
    # 2016-10-04 07:59:42 local (BST) lands on 08:00, value 61/577.
    assert cube.rate[li, cube.day_index(date(2016, 10, 4)), 0] == pytest.approx(61 / 577)
    # After the clocks went back (GMT), 08:00 local is still the first slot.
    assert not np.isnan(cube.rate[li, cube.day_index(date(2016, 11, 1)), 0])


def test_dead_sensor_is_masked_but_a_full_lot_is_not(cube, frame):
    brd = cube.lot_index("BHMEURBRD02")
    day = cube.day_index(date(2016, 11, 9))
    # 19 cars from 08:00 to 14:00, flat: masked once the run has lasted 4 hours (from 11:30),
    # never in hindsight (a forecast at 10:00 could not have known).
    assert np.isnan(cube.rate[brd, day, 7:13]).all()
    assert not np.isnan(cube.rate[brd, day, :7]).any()
    # A lot at capacity for hours is full, not broken.
    thl = cube.lot_index("BHMBCCTHL01")
    assert np.nansum(cube.rate[thl] == 1.0) > 10


def test_duplicates_do_not_change_values(frame):
    doubled = pd.concat([frame, frame.head(500)])
    a = readings_to_cube(frame, "Europe/London", 30)
    b = readings_to_cube(doubled, "Europe/London", 30)
    np.testing.assert_array_equal(a.rate, b.rate)


def test_24_hour_lot():
    start = datetime(2020, 6, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=30 * i + 3) for i in range(48 * 3)]
    readings = pd.DataFrame({"lot_id": "H24", "observed_at": times, "occupied": 5, "capacity": 10})
    readings["occupied"] = [i % 10 for i in range(len(times))]
    cube = readings_to_cube(readings, "UTC", 30)
    assert cube.spec.slots_per_day == 48 and cube.rate.shape == (1, 3, 48)
    assert not np.isnan(cube.rate).any()


def test_the_serving_fast_path_equals_the_training_path_on_every_sample_lot():
    """lot_rates (numpy, serving) and readings_to_cube (pandas, training) agree exactly, dead-sensor
    masking and the 23:50 -> next-day roll included."""
    from datetime import date

    from conftest import SAMPLE_CSV

    from parking_core.csv_import import BIRMINGHAM, read_frame
    from parking_core.forecasting.grid import lot_rates, readings_to_cube
    from parking_core.forecasting.serve import History

    frame, _ = read_frame(SAMPLE_CSV, BIRMINGHAM, "Europe/London")
    cube = readings_to_cube(frame, "Europe/London", 30)
    for first, last in ((cube.days[0], cube.days[-1]), (date(2016, 10, 20), date(2016, 11, 24))):
        for lot_id, group in frame.groupby("lot_id"):
            expected = readings_to_cube(group, "Europe/London", 30, spec=cube.spec, lots=[lot_id],
                                        first_day=first, last_day=last).rate[0]
            h = History.of_frame(group)
            got = lot_rates(h.epoch_ns, h.occupied, h.capacity, "Europe/London", cube.spec, first, last)
            np.testing.assert_array_equal(got, expected, err_msg=lot_id)
    # Readings near midnight roll into the next day exactly as in training.
    times = pd.to_datetime(["2020-01-06 23:50", "2020-01-07 08:05"], utc=True)
    late = pd.DataFrame({"lot_id": "L", "observed_at": times, "occupied": [5, 7], "capacity": [10, 10]})
    spec = GridSpec(30, tuple(range(0, 1440, 30)))
    h = History.of_frame(late)
    got = lot_rates(h.epoch_ns, h.occupied, h.capacity, "UTC", spec, date(2020, 1, 6), date(2020, 1, 7))
    expected = readings_to_cube(late, "UTC", 30, spec=spec, first_day=date(2020, 1, 6),
                                last_day=date(2020, 1, 7)).rate[0]
    np.testing.assert_array_equal(got, expected)
    assert got[1, 0] == 0.5 and got[1, 16] == pytest.approx(0.7)


def test_grid_up_to_an_origin_does_not_depend_on_later_readings(frame):
    """Build the grid from the readings of the slots up to an origin (10:00: readings before
    10:15), and from every reading: equal up to the origin (the dead-sensor mask included)."""
    last_reading = pd.Timestamp("2016-11-09 10:15", tz="Europe/London")
    full = readings_to_cube(frame, "Europe/London", 30)
    cut = readings_to_cube(frame[frame["observed_at"] < last_reading], "Europe/London", 30, spec=full.spec,
                           lots=full.lots, first_day=full.days[0], last_day=full.days[-1])
    day = full.day_index(date(2016, 11, 9))
    known = full.rate[:, : day + 1].copy()
    known[:, day, full.slot_index(10 * 60) + 1:] = np.nan
    np.testing.assert_array_equal(np.isnan(known), np.isnan(cut.rate[:, : day + 1]))
    np.testing.assert_array_equal(np.nan_to_num(known), np.nan_to_num(cut.rate[:, : day + 1]))
