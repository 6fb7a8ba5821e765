"""The demo's replay of the sample in the present: the shift, the repeated days, the camera's day,
and a restart that imports and registers nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from conftest import SAMPLE_CSV

from parkcast.demo import prepare_replay
from parkcast.replay import CAMERA_LOT, NIGHT_FROM, CameraDay, TemplateWeek, opening_hours, shift_weeks
from parking_core.store.sqlite import SQLiteStore

LONDON = ZoneInfo("Europe/London")


def test_the_shift_puts_the_last_day_on_its_weekday_in_the_week_before_today():
    last = date(2016, 12, 5)  # a Monday
    for today in (date(2026, 11, 24) + timedelta(days=i) for i in range(14)):
        moved = last + timedelta(weeks=shift_weeks(last, today))
        assert moved.weekday() == last.weekday()
        assert today - timedelta(days=7) <= moved < today


def test_every_later_day_repeats_its_weekdays_latest_full_day_at_the_same_local_time():
    week = TemplateWeek.load(SAMPLE_CSV)
    # The sample's last week misses its weekend; the present must not.
    start = datetime(2026, 6, 1, tzinfo=UTC)  # summer time, the templates are from winter
    rows = list(week.after("Shopping", start, start + timedelta(days=14)))
    days = {t.astimezone(LONDON).date() for t, _, _ in rows}
    assert len(days) == 14 and all(start < t <= start + timedelta(days=14) for t, _, _ in rows)
    assert [t for t, _, _ in rows] == sorted(t for t, _, _ in rows)
    template_day, template = week.days["Shopping"][rows[0][0].astimezone(LONDON).weekday()]
    assert rows[0][0].astimezone(LONDON).time() == template[0][0].time()  # 08:xx local, not moved by DST
    assert (rows[0][1], rows[0][2]) == template[0][1:]
    # Resuming from a reading in the middle of a day continues after it.
    middle = rows[5][0]
    assert next(week.after("Shopping", middle, start + timedelta(days=14)))[0] == rows[6][0]


def test_opening_hours_come_from_the_reporting_times():
    times = [datetime(2016, 10, 4, 7, 59), datetime(2016, 10, 4, 12, 0), datetime(2016, 10, 4, 16, 29)]
    assert opening_hours(times, 30) == ("07:30", "16:30")


def test_the_camera_plays_a_day_in_capture_time_order():
    day = CameraDay.load()
    times = [t for t, _, _ in day.frames]
    assert times == sorted(times) and len(times) == 6
    emptiest = day.frames[0][2]
    assert day.scene(time(3, 0))[1] == day.scene(NIGHT_FROM)[1] == emptiest
    assert day.scene(time(9, 0))[1] > day.scene(time(6, 30))[1]  # the morning fills the car park
    start = datetime(2026, 11, 20, tzinfo=UTC)
    counts = list(day.readings(start, start + timedelta(days=1), timedelta(minutes=30)))
    assert len(counts) == 48 and counts[0][0] == start + timedelta(minutes=30)


def test_a_restart_imports_and_registers_nothing_twice(settings):
    store = SQLiteStore(settings.sqlite_path)
    today = date(2026, 11, 27)
    first = prepare_replay(settings, store, SAMPLE_CSV, today)
    assert first["accepted"] == 28744 and first["last_day"] == date(2026, 11, 23)
    devices = json.loads((settings.data_dir / "replay" / "devices.json").read_text())
    # A week later the kept shift is reused: the same readings, the same devices.
    again = prepare_replay(settings, store, SAMPLE_CSV, today + timedelta(days=7))
    assert again["accepted"] == 0 and again["weeks"] == first["weeks"]
    assert json.loads((settings.data_dir / "replay" / "devices.json").read_text()) == devices
    assert len(store.list_devices()) == len(devices) == 30
    shopping = store.get_lot("Shopping")
    assert (shopping.opens_at, shopping.closes_at) == ("07:30", "17:00")
    assert store.get_lot(CAMERA_LOT.lot_id) == CAMERA_LOT
    latest = store.latest_reading("Shopping").observed_at.astimezone(LONDON)
    assert latest.date() == date(2026, 11, 23) and latest.time() == time(16, 29, 5)
