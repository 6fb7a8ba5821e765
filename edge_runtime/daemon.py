"""The edge daemon: frame -> every slot cropped and classified in one batch -> smoothed states
-> a reading on change and as a heartbeat -> the durable outbox -> the uploader thread.

It stays up through corrupt frames (skipped), a missing camera (retried with backoff) and API
outages (the outbox holds readings until they are acknowledged). A wrong clock (a Pi without
RTC before NTP sync) holds readings back instead of stamping them 1970. SIGTERM/SIGINT stop it
cleanly: the current frame finishes, one last upload is tried, the outbox is closed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from edge_runtime.calibrate import MIN_PATCHES, load_calibration
from edge_runtime.classifier import DEFAULT_MODEL, SlotClassifier
from edge_runtime.config import ConfigError, EdgeConfig, check_self_calibration, wants_self_calibration
from edge_runtime.outbox import Outbox
from edge_runtime.preprocess import crop_all
from edge_runtime.self_calibration import SelfCalibration, adapter_base, existing_calibration
from edge_runtime.slotmap import load_slot_map, validate
from edge_runtime.smoothing import Smoother
from edge_runtime.sources import Exhausted, FrameError, SourceUnavailable, open_source
from edge_runtime.uploader import Uploader

log = logging.getLogger("parkcast.edge")
EARLIEST_VALID_CLOCK = datetime(2024, 1, 1, tzinfo=UTC)  # before this, the clock is not set


class JsonFormatter(logging.Formatter):
    """One JSON object per line (journald/CloudWatch friendly), extras included."""

    _standard = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in self._standard})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)


class Daemon:
    def __init__(self, config: EdgeConfig, clock=lambda: datetime.now(UTC)):
        self.config, self.clock = config, clock
        # Everything that can be wrong in the configuration fails here, before the loop.
        self.slot_map = load_slot_map(config.slot_map, config.frame or None)
        self.api_key = config.key()
        check_self_calibration(config)
        sc = config.self_calibration
        wanted = wants_self_calibration(config)
        model = Path(config.model or DEFAULT_MODEL)
        calibration = config.calibration or (
            existing_calibration(sc.out, model, self.slot_map, sc.mode) if wanted else None)
        if sc.enabled is None and config.adapter and not config.calibration:
            calibration = adapter_base(config.adapter, sc.out)
        if wanted and calibration is None and config.adapter:
            raise ConfigError(f"an adapter with self-calibration must be fitted on top of its calibration: "
                              f"run without `adapter` until {sc.out} exists, then `parkcast-edge adapt "
                              f"--calibration {sc.out}`")
        self.classifier = SlotClassifier(config.model or None, threads=config.threads,
                                         adapter=config.adapter or None, calibration=calibration)
        self.self_calibration = None  # collecting frames for a calibration that does not exist yet
        if wanted and calibration is None:
            why = None
            if not self.classifier.has_embedding:
                why = (f"{self.classifier.path} has no embedding output: self-calibration needs a model trained "
                       "by `parkcast train-slots`")
            elif sc.frames * len(self.slot_map.slots) < MIN_PATCHES:
                why = (f"[self_calibration]: {sc.frames} frames x {len(self.slot_map.slots)} slots is fewer than "
                       f"the {MIN_PATCHES} slot patches a calibration needs: raise frames")
            if why and sc.enabled:
                raise ConfigError(why)
            if why:  # on by default only: say why it stays off, and run as configured
                log.info("self-calibration off", extra={"why": why})
            else:
                self.self_calibration = SelfCalibration(sc.out, sc.buffer, sc.frames, sc.every_s,
                                                        self.classifier.path, self.slot_map, sc.mode)
        self.source = open_source(config.source.kind, config.source.path, config.source.loop)
        s = config.smoothing
        self.smoother = Smoother(len(self.slot_map.slots), s.alpha, s.on, s.off)
        self.outbox = Outbox(config.outbox)
        u = config.upload
        self.uploader = Uploader(self.outbox, config.api_url, self.api_key, u.batch, u.timeout_s,
                                 u.backoff_base_s, u.backoff_max_s)
        self.stopping = threading.Event()
        self.health_failing = False
        self.stats = {"frames": 0, "frame_errors": 0, "source_errors": 0, "readings": 0, "clock_holds": 0}
        self.last_states = None
        self.last_reading_at: datetime | None = None
        self.last_frame_at: datetime | None = None
        self.source_failures = 0
        self.checked_frame_size = False

    # -- one frame ---------------------------------------------------------------------------

    def process(self, frame) -> dict | None:
        """Classify one frame; returns the reading put in the outbox, if any."""
        if not self.checked_frame_size:
            validate(self.slot_map, frame.size)  # a slot map for another camera fails loudly
            self.checked_frame_size = True
        batch = crop_all(frame, self.slot_map, self.classifier.size)
        if self.self_calibration is None:
            probabilities, embedding = self.classifier.predict(batch), None
        else:  # no calibration or adapter yet: the base model's outputs are the prediction
            probabilities, embedding = self.classifier.outputs(batch)
        states = self.smoother.update(probabilities)
        now = self.clock()
        self.last_frame_at = now
        if self.self_calibration is not None and now >= EARLIEST_VALID_CLOCK:
            self.collect_for_calibration(now, probabilities, embedding)
        changed = self.last_states is None or bool((states != self.last_states).any())
        heartbeat = self.last_reading_at is None or (now - self.last_reading_at).total_seconds() >= \
            self.config.heartbeat_s
        if not (changed or heartbeat):
            return None
        if now < EARLIEST_VALID_CLOCK or (self.last_reading_at and now <= self.last_reading_at):
            self.stats["clock_holds"] += 1
            log.error("clock not trustworthy, reading held back", extra={"clock": now.isoformat(),
                      "last_reading_at": self.last_reading_at.isoformat() if self.last_reading_at else None})
            return None
        reading = {
            "lot_id": self.config.lot_id, "device_id": self.config.device_id,
            "observed_at": now.isoformat(timespec="milliseconds"),
            "capacity": len(self.slot_map.slots), "occupied": int(states.sum()),
            "slots": [{"slot_id": s.slot_id, "occupied": bool(st), "confidence": round(float(p), 3)}
                      for s, st, p in zip(self.slot_map.slots, states, probabilities, strict=True)],
        }
        self.outbox.put(reading)
        self.uploader.wake.set()
        self.last_states, self.last_reading_at = states, now
        self.stats["readings"] += 1
        log.info("reading", extra={"occupied": reading["occupied"], "capacity": reading["capacity"],
                                   "changed": changed})
        return reading

    def collect_for_calibration(self, now: datetime, probabilities, embedding) -> None:
        """Keep this frame for self-calibration if it is time to; once enough are in, calibrate and use
        it. A failure here is logged and never costs the reading."""
        sc = self.self_calibration
        try:
            head = sc.add(now, probabilities, embedding) if sc.wants(now) else None
            if head is None:
                return
            self.classifier.calibration = load_calibration(sc.out)
        except Exception:  # noqa: BLE001 - the count matters more than the calibration
            log.exception("self-calibration step failed")
            return
        self.self_calibration = None
        log.info("self-calibrated", extra={"calibration": str(sc.out), "frames": sc.frames, "mode": sc.mode,
                                           "kept_base": head["kept_base"], "taken_share": head["taken_share"],
                                           "agreement_with_base": head["agreement_with_base"],
                                           "overruled_sure": head["overruled_sure"],
                                           "chose": head.get("chose", sc.mode),
                                           "threshold_sure_flipped": head.get("threshold_sure_flipped")})

    # -- the loop ----------------------------------------------------------------------------

    def step(self) -> float:
        """Read and process one frame; returns how long to wait before the next."""
        try:
            frame = self.source.read()
        except FrameError as exc:
            self.stats["frame_errors"] += 1
            log.warning("corrupt frame skipped", extra={"error": str(exc)})
            return self.config.source.interval_s
        except SourceUnavailable as exc:
            self.stats["source_errors"] += 1
            self.source_failures += 1
            delay = min(60.0, self.config.source.interval_s * 2 ** min(self.source_failures, 6))
            log.error("no frames, retrying", extra={"error": str(exc), "retry_in_s": delay})
            return delay
        self.source_failures = 0
        self.stats["frames"] += 1
        self.process(frame)
        return self.config.source.interval_s

    def write_health(self) -> None:
        counts = self.outbox.counts()
        health = {
            "status": "ok" if self.source_failures == 0 and self.uploader.failures < 5 else "degraded",
            "pid": os.getpid(), "at": self.clock().isoformat(),
            "last_frame_at": self.last_frame_at.isoformat() if self.last_frame_at else None,
            "last_reading_at": self.last_reading_at.isoformat() if self.last_reading_at else None,
            "last_upload_at": datetime.fromtimestamp(self.uploader.last_success, UTC).isoformat()
            if self.uploader.last_success else None,
            "last_upload_error": self.uploader.last_error, "uploaded": self.uploader.uploaded, **counts,
            **self.stats,
            "calibration": str(self.classifier.calibration.path) if self.classifier.calibration else None,
        }
        if self.self_calibration is not None:
            health["self_calibration"] = {"frames": self.self_calibration.collected,
                                          "needed": self.self_calibration.frames, "mode": self.self_calibration.mode}
        path = Path(self.config.health_file)
        try:  # diagnostics only: a full or read-only disk here must never stop the counting
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(health, indent=1))
            tmp.replace(path)
        except OSError as exc:
            if not self.health_failing:  # once per failure streak, not every frame
                log.warning("health file not written; counting goes on", extra={"file": str(path), "error": str(exc)})
            self.health_failing = True
            return
        self.health_failing = False

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        uploader = threading.Thread(target=self.uploader.run, name="uploader", daemon=True)
        uploader.start()
        log.info("started", extra={"lot": self.config.lot_id, "device": self.config.device_id,
                                   "slots": len(self.slot_map.slots), "model": str(self.classifier.path),
                                   "calibration": str(self.classifier.calibration.path)
                                   if self.classifier.calibration else None,
                                   "self_calibration": self.self_calibration is not None,
                                   "adapter": self.config.adapter or None,
                                   "source": self.config.source.kind})
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    delay = self.step()
                except Exhausted:
                    log.info("replay finished; uploading what is left")
                    self._drain(timeout=30)
                    break
                except Exception:  # noqa: BLE001 - one bad frame must not stop the device
                    log.exception("frame processing failed")
                    delay = self.config.source.interval_s
                self.write_health()
                self.stopping.wait(max(0.0, delay - (time.monotonic() - started)))
        finally:
            log.info("stopping", extra=self.outbox.counts())
            self.uploader.stop()
            uploader.join(timeout=self.config.upload.timeout_s + 5)
            self.write_health()
            self.outbox.close()
        return 0

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.outbox.counts()["pending"] and time.monotonic() < deadline and not self.stopping.is_set():
            self.uploader.wake.set()
            time.sleep(0.2)
