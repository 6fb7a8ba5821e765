"""The demo's replay of the sample in the present, through the real API like a fleet of edges.

Mapping (documented in the README):
- History: the Birmingham sample (Oct-Dec 2016) is moved by a whole number of weeks, in local wall
  time, so its last day lands on the same weekday within the week before today: weekdays and times
  of day line up with the present. The store holds the moved readings; the CSV is untouched.
- After the history, each date replays the latest full day of the sample with the same weekday
  (per car park), so there is a reading for every half hour the car parks report, up to now and on.
- The camera lot `pucpr` plays a day: the PKLot frames are ordered by their capture time of day
  (the file names are timestamps; the frames come from several days) and the scene the edge camera
  sees at a local time of day is the last frame captured at or before that time of day; before the
  first capture and from NIGHT_FROM on the car park is at its emptiest (the first frame of the day).
  Times of day are the lot's local time, which is the Birmingham car parks' (see CAMERA_LOT).
- The replay clock follows the wall clock; `--speed N` runs it N times faster from the moment the
  replay starts (each reading is then stamped when it is posted, so the dashboard moves N times
  faster and the time of day no longer matches the data).

One device per car park posts its readings with its own API key (kept 0600 in the data folder), so
each POST gets the production model's forecast through the real path; a restart resumes from each
car park's last stored reading, so nothing is posted twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from parking_core.config import Settings
from parking_core.contracts import Lot, Reading
from parking_core.csv_import import BIRMINGHAM, BIRMINGHAM_TIMEZONE, read_readings
from parking_core.devices import register_device
from parking_core.store import Store

log = logging.getLogger("parkcast.replay")

REPO = Path(__file__).resolve().parent.parent
PKLOT = REPO / "data" / "sample" / "slots" / "pklot_pucpr_frames"
PKLOT_SLOT_MAP = PKLOT / "labeled" / "2012-09-11_15_16_58.xml"
# PUCPR is in Curitiba, but one model serves one grid (timezone, step): the demo's camera lot plays
# its day on the Birmingham car parks' clock, so the pipeline trains on every lot together.
CAMERA_LOT = Lot(lot_id="pucpr", name="PKLot PUCPR (edge camera replay)", capacity=100,
                 timezone=BIRMINGHAM_TIMEZONE)
CAMERA_DEVICE = "pi-pucpr-demo"
NIGHT_FROM = clock(18, 0)  # the camera car park empties for the night (no frame of PKLot is later than 15:16)
CAMERA_HISTORY_DAYS = 8  # the forecaster wants a week of observed days before it answers for a lot
MAX_CATCH_UP = timedelta(days=14)  # a demo restarted after a long pause fills two weeks, not the whole gap
WEEK = timedelta(days=7)


def replay_dir(settings: Settings) -> Path:
    path = settings.data_dir / "replay"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the shift -----------------------------------------------------------------------------


def shift_weeks(last_day: date, today: date) -> int:
    """Whole weeks that move last_day onto the same weekday within the seven days before today."""
    return max(0, ((today - last_day).days - 1) // 7)


def saved_shift(settings: Settings, sample: Path, last_day: date, today: date) -> int:
    """The shift chosen on the first start, kept: a restart re-imports the same times (idempotent)."""
    path = replay_dir(settings) / "shift.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("sample") == sample.name:
            return int(saved["weeks"])
    weeks = shift_weeks(last_day, today)
    path.write_text(json.dumps({"sample": sample.name, "weeks": weeks, "chosen_on": today.isoformat()}))
    return weeks


def opening_hours(local_times: list[datetime], step_minutes: int) -> tuple[str, str]:
    """The reporting hours seen in the data, widened to the grid (08:00-16:30 for Birmingham)."""
    def minutes(t: datetime) -> int:
        return t.hour * 60 + t.minute

    first = min(minutes(t) for t in local_times) // step_minutes * step_minutes
    last = -(-(max(minutes(t) for t in local_times) + 1) // step_minutes) * step_minutes
    last = min(last, 23 * 60 + 59)
    return f"{first // 60:02d}:{first % 60:02d}", f"{last // 60:02d}:{last % 60:02d}"


# -- the sample's last weeks, repeated ----------------------------------------------------


FULL_DAY = 12  # readings a template day needs (a full Birmingham day has 18)


@dataclass(frozen=True)
class TemplateWeek:
    """Per lot and weekday, the latest full day of the sample (local wall times and counts); `after`
    repeats it on every later date with that weekday, so gaps in the sample's last week (a weekend,
    a lot offline for a day) do not become gaps in the present."""

    zone: ZoneInfo
    days: dict[str, dict[int, tuple[date, list[tuple[datetime, int, int]]]]]  # lot -> weekday -> (date, rows)

    @classmethod
    def load(cls, sample: Path, timezone: str = BIRMINGHAM_TIMEZONE) -> TemplateWeek:
        zone = ZoneInfo(timezone)
        by_day: dict[tuple[str, date], list[tuple[datetime, int, int]]] = {}
        for _, r in read_readings(sample, BIRMINGHAM, timezone, "replay"):
            if isinstance(r, Reading):
                local = r.observed_at.astimezone(zone).replace(tzinfo=None)
                by_day.setdefault((r.lot_id, local.date()), []).append((local, r.capacity, r.occupied))
        days: dict[str, dict[int, tuple[date, list]]] = {}
        for (lot_id, day), rows in sorted(by_day.items(), key=lambda kv: (len(kv[1]) >= FULL_DAY, kv[0][1])):
            days.setdefault(lot_id, {})[day.weekday()] = (day, sorted(rows))  # the latest full day wins
        return cls(zone, days)

    def after(self, lot_id: str, start: datetime, end: datetime) -> Iterator[tuple[datetime, int, int]]:
        """(UTC time, capacity, occupied) in (start, end], each date a copy of its weekday's template."""
        templates = self.days.get(lot_id, {})
        day, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        while day <= last:
            if day.weekday() in templates:
                template, rows = templates[day.weekday()]
                for local, capacity, occupied in rows:
                    when = _utc(local + (day - template), self.zone)
                    if start < when <= end:
                        yield when, capacity, occupied
            day += timedelta(days=1)


def _utc(local: datetime, zone: ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone).astimezone(UTC)


# -- the camera lot's day -----------------------------------------------------------------


@dataclass(frozen=True)
class CameraDay:
    """The PKLot frames as one day: (capture time of day, frame, occupied as the edge model sees it)."""

    frames: list[tuple[clock, Path, int]]

    @classmethod
    def load(cls, frames_dir: Path = PKLOT) -> CameraDay:
        from PIL import Image

        from edge_runtime.classifier import SlotClassifier
        from edge_runtime.preprocess import crop_all
        from edge_runtime.slotmap import load_slot_map

        slot_map, classifier = load_slot_map(PKLOT_SLOT_MAP), SlotClassifier()
        out = []
        for path in frames_dir.glob("*/*.jpg"):
            taken = datetime.strptime(path.stem, "%Y-%m-%d_%H_%M_%S").time()
            image = Image.open(path).convert("RGB")
            patches = crop_all(image, slot_map, classifier.size)
            out.append((taken, path, int((classifier.predict(patches) >= 0.5).sum())))
        return cls(sorted(out))

    def scene(self, local_time: clock) -> tuple[Path, int]:
        """The frame the camera sees at this local time of day."""
        i = bisect_right([t for t, _, _ in self.frames], local_time)
        if i == 0 or local_time >= NIGHT_FROM:
            i = 1
        _, path, occupied = self.frames[i - 1]
        return path, occupied

    def readings(self, start: datetime, end: datetime, step: timedelta) -> Iterator[tuple[datetime, int]]:
        """The day's counts on the grid in (start, end]: the camera lot's past before its edge ran."""
        zone = ZoneInfo(CAMERA_LOT.timezone)
        when = datetime.fromtimestamp((start.timestamp() // step.total_seconds() + 1) * step.total_seconds(), UTC)
        while when <= end:
            yield when, self.scene(when.astimezone(zone).time())[1]
            when += step


# -- devices ------------------------------------------------------------------------------


def device_keys(settings: Settings, store: Store, lot_ids: list[str]) -> dict[str, dict[str, str]]:
    """One device per car park, created once; the keys are kept (0600) in the data folder."""
    path = replay_dir(settings) / "devices.json"
    saved: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    taken = {d.device_id for d in store.list_devices()}
    for lot_id in lot_ids:
        if lot_id in saved:
            continue
        device_id = CAMERA_DEVICE if lot_id == CAMERA_LOT.lot_id else f"{lot_id}-replay"
        n = 1
        while device_id in taken:  # a key file lost: a new device, the old one stays as it was
            n += 1
            device_id = f"{lot_id}-replay-{n}"
        device, key = register_device(store, lot_id, device_id)
        saved[lot_id] = {"device_id": device.device_id, "api_key": key}
        taken.add(device_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(saved, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path)
    return saved


# -- the replayer process -----------------------------------------------------------------


class Replayer:
    def __init__(self, settings: Settings, api_url: str, sample: Path, speed: float = 1.0,
                 camera_frames: Path | None = None):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.settings, self.api, self.speed = settings, api_url.rstrip("/"), speed
        self.week = TemplateWeek.load(sample)
        devices = replay_dir(settings) / "devices.json"
        if not devices.exists():
            raise FileNotFoundError(f"{devices}: no replay devices (`parkcast demo` creates them)")
        self.devices = json.loads(devices.read_text())
        self.camera = CameraDay.load() if camera_frames is not None else None
        self.camera_frames = camera_frames
        self.client = httpx.Client(timeout=120)
        self.started = datetime.now(UTC)
        self.posted = 0
        self.shown: Path | None = None
        self.last: dict[str, datetime] = {}

    def replay_clock(self, now: datetime) -> datetime:
        return self.started + (now - self.started) * self.speed

    def stamp(self, when: datetime) -> datetime:
        """When a reading of replay time `when` is posted (the wall clock at speed 1)."""
        return when if when <= self.started else self.started + (when - self.started) / self.speed

    def resume_points(self) -> None:
        for lot in self.client.get(f"{self.api}/v1/lots").raise_for_status().json():
            latest = lot["latest"]
            start = datetime.fromisoformat(latest["observed_at"]) if latest else None
            if lot["lot_id"] == CAMERA_LOT.lot_id and start is None:
                start = self.started - timedelta(days=CAMERA_HISTORY_DAYS)
            if start is not None:
                start = max(start, self.started - MAX_CATCH_UP)
            if start is not None and lot["lot_id"] in self.devices:
                self.last[lot["lot_id"]] = start

    def due(self, lot_id: str, until: datetime) -> list[tuple[datetime, int, int]]:
        start = self.last[lot_id]
        if lot_id == CAMERA_LOT.lot_id:
            if self.camera is None or start >= self.started:
                return []  # from now on the edge daemon reports this lot
            until = min(until, self.started)
            return [(t, CAMERA_LOT.capacity, n) for t, n in self.camera.readings(start, until, timedelta(minutes=30))]
        return list(self.week.after(lot_id, start, until))

    def post(self, lot_id: str, rows: list[tuple[datetime, int, int]]) -> None:
        device = self.devices[lot_id]
        for i in range(0, len(rows), 100):
            batch = [{"lot_id": lot_id, "device_id": device["device_id"],
                      "observed_at": self.stamp(t).isoformat(), "capacity": c, "occupied": o}
                     for t, c, o in rows[i : i + 100]]
            r = self.client.post(f"{self.api}/v1/readings", json={"readings": batch},
                                 headers={"X-API-Key": device["api_key"]})
            if r.status_code >= 400:
                raise RuntimeError(f"POST /v1/readings for {lot_id}: {r.status_code} {r.text[:300]}")
            body = r.json()
            self.posted += body["accepted"]
            sources = {f["lot_id"]: f.get("forecast", {}).get("source", f["status"]) for f in body.get("forecasts", [])}
            log.info("posted %d reading(s) for %s up to %s; forecast: %s", len(batch), lot_id,
                     batch[-1]["observed_at"], sources.get(lot_id, "none"))
        self.last[lot_id] = rows[-1][0]

    def tick(self) -> int:
        now = self.replay_clock(datetime.now(UTC))
        count = 0
        for lot_id in sorted(self.last):
            rows = self.due(lot_id, now)
            if rows:
                self.post(lot_id, rows)
                count += len(rows)
        if self.camera is not None:
            self.show_scene(now)
        return count

    def show_scene(self, now: datetime) -> None:
        """Put the frame of this moment where the edge camera looks (swapped atomically)."""
        path, _ = self.camera.scene(now.astimezone(ZoneInfo(CAMERA_LOT.timezone)).time())
        if path == self.shown:
            return
        self.camera_frames.mkdir(parents=True, exist_ok=True)
        tmp = self.camera_frames.parent / "scene.tmp"
        shutil.copyfile(path, tmp)
        os.replace(tmp, self.camera_frames / "scene.jpg")
        self.shown = path
        log.info("camera scene: %s", path.name)

    def write_health(self, caught_up: bool) -> None:
        health = {"pid": os.getpid(), "caught_up": caught_up, "posted": self.posted, "speed": self.speed,
                  "at": datetime.now(UTC).isoformat(), "last": {k: v.isoformat() for k, v in self.last.items()}}
        path = replay_dir(self.settings) / "health.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(health, indent=1))
        tmp.replace(path)

    def run(self, stopping: threading.Event, poll_s: float = 5.0) -> None:
        self.resume_points()
        caught_up = self.tick()
        log.info("caught up: %d reading(s) posted for %d car park(s)", caught_up, len(self.last))
        self.write_health(True)
        while not stopping.wait(poll_s):
            try:
                if self.tick():
                    self.write_health(True)
            except httpx.TransportError as exc:  # the API restarting: an edge retries, so do we
                log.warning("API unreachable, retrying: %s", exc)
