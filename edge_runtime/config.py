"""edge.toml: what one Pi watches and where it reports. Validated at start: a bad file stops
the daemon with the key at fault, before any camera or network is touched."""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import get_type_hints

log = logging.getLogger("parkcast.edge")


# The API's id rule (parking_core.contracts.ID_PATTERN; a test holds them equal): the edge stands alone.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}")


class ConfigError(ValueError):
    pass


@dataclass
class SourceConfig:
    kind: str = "folder"  # folder (replay) | video (a file, OpenCV) | camera (OpenCV index) | rtsp (URL) | picamera
    path: str = ""  # folder of frames, camera index or stream URL
    interval_s: float = 5.0
    loop: bool = True  # folder: start again at the end


@dataclass
class SmoothingConfig:
    alpha: float = 0.5  # weight of the new frame in the moving average
    on: float = 0.6  # a free slot becomes taken above this smoothed probability
    off: float = 0.4  # and free again below this one: no flicker in between


@dataclass
class UploadConfig:
    batch: int = 100
    timeout_s: float = 10.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass
class SelfCalibrationConfig:
    # The daemon collects frames and calibrates itself (edge_runtime.self_calibration). Unset: on unless
    # the config names a calibration or an adapter of its own, and off (with a log line) where it cannot
    # work (a model without embedding, too few slots, an unwritable folder); true: on, and refused there.
    enabled: bool | None = None
    out: str = ""  # the calibration it writes and uses from then on (default: calibration.json beside the outbox)
    buffer: str = ""  # the collected outputs, kept across restarts (default: calibration-frames.npz beside it)
    frames: int = 40
    every_s: float = 900.0  # at most one frame per 15 minutes: 40 frames span a working day
    mode: str = "threshold"  # "threshold": only the decision threshold moves; "full": a new head; "auto" (docs/edge.md)


@dataclass
class EdgeConfig:
    api_url: str
    lot_id: str
    device_id: str
    slot_map: str
    api_key: str = ""
    api_key_file: str = ""
    model: str = ""  # default: the packaged int8 model
    calibration: str = ""  # this camera's label-free calibration from `parkcast-edge calibrate`
    adapter: str = ""  # this camera's adapter from `parkcast-edge adapt` (none: the model as trained)
    frame: str = ""  # for a CSV slot map holding several frames
    heartbeat_s: float = 300.0
    outbox: str = "outbox.sqlite3"
    health_file: str = "health.json"
    threads: int = 1
    source: SourceConfig = field(default_factory=SourceConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    self_calibration: SelfCalibrationConfig = field(default_factory=SelfCalibrationConfig)

    def key(self) -> str:
        if self.api_key:
            return self.api_key
        if self.api_key_file:
            path = Path(self.api_key_file)
            if not path.exists():
                raise ConfigError(f"api_key_file {path} does not exist")
            return path.read_text().strip()
        if os.environ.get("PARKCAST_EDGE_API_KEY"):
            return os.environ["PARKCAST_EDGE_API_KEY"]
        raise ConfigError("no API key: set api_key, api_key_file or PARKCAST_EDGE_API_KEY")


def _section(cls, data: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    types = get_type_hints(cls)
    for name, value in data.items():
        wanted = bool if types[name] == bool | None else types[name]  # TOML has no null: a set value is a bool
        if wanted in (str, bool, int, float) and not _is(value, wanted):
            raise ConfigError(f"{where}: {name} must be {_WORDS[wanted]}, not {value!r}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


_WORDS = {str: "a string", bool: "true or false", int: "an integer", float: "a finite number"}


def _is(value, wanted: type) -> bool:
    if wanted is bool or isinstance(value, bool):  # TOML's true/false only for booleans, never for numbers
        return wanted is bool and isinstance(value, bool)
    if wanted is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, wanted)


def load_config(path: Path | str) -> EdgeConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    base = path.parent
    sub = {name: _section(cls, data.pop(name, {}), f"{path} [{name}]")
           for name, cls in (("source", SourceConfig), ("smoothing", SmoothingConfig), ("upload", UploadConfig),
                             ("self_calibration", SelfCalibrationConfig))}
    config = _section(EdgeConfig, {**data, **sub}, str(path))
    # Relative paths are relative to the config file.
    for name in ("slot_map", "model", "calibration", "adapter", "outbox", "health_file", "api_key_file"):
        value = getattr(config, name)
        if value and not Path(value).is_absolute():
            setattr(config, name, str(base / value))
    for name in ("out", "buffer"):
        value = getattr(config.self_calibration, name)
        if value and not Path(value).is_absolute():
            setattr(config.self_calibration, name, str(base / value))
    if config.source.kind in ("folder", "video") and config.source.path and not Path(config.source.path).is_absolute():
        config.source.path = str(base / config.source.path)
    if config.source.kind not in ("folder", "video", "camera", "rtsp", "picamera"):
        raise ConfigError(f"{path} [source]: kind must be folder, video, camera, rtsp or picamera")
    if not 0 < config.smoothing.alpha <= 1 or not 0 <= config.smoothing.off < config.smoothing.on <= 1:
        raise ConfigError(f"{path} [smoothing]: need 0 < alpha <= 1 and 0 <= off < on <= 1")
    if not 1 <= config.upload.batch <= 100:
        raise ConfigError(f"{path} [upload]: batch must be 1..100 (the API's limit)")
    for name in ("lot_id", "device_id"):  # the API refuses other ids: every reading would be lost
        if not ID_RE.fullmatch(getattr(config, name)):
            raise ConfigError(f"{path}: {name} {getattr(config, name)!r} must be 1-64 characters: letters, digits, "
                              "space, '.', '_', ':' or '-', starting with a letter or digit (as the API's)")
    check_self_calibration(config, f"{path} [self_calibration]")
    return config


def wants_self_calibration(config: EdgeConfig) -> bool:
    """Asked for (`enabled = true`), or left unset on a camera without a calibration or an adapter of
    its own."""
    sc = config.self_calibration
    return bool(sc.enabled or (sc.enabled is None and not (config.calibration or config.adapter)))


def check_self_calibration(config: EdgeConfig, where: str = "[self_calibration]") -> None:
    """Validate [self_calibration] and fill in its default paths (beside the outbox); the daemon
    calls it again for a config built in code, so it must stay idempotent."""
    from edge_runtime.calibrate import MIN_FRAMES, MODES

    sc = config.self_calibration
    beside = Path(config.outbox).parent  # the device's writable state folder (/var/lib/parkcast)
    sc.out = sc.out or str(beside / "calibration.json")  # also where an adapter may find the daemon's own
    sc.buffer = sc.buffer or str(beside / "calibration-frames.npz")
    if not wants_self_calibration(config):
        return
    if sc.enabled and config.calibration:
        raise ConfigError(f"{where}: set either `calibration` (a file from parkcast-edge calibrate) or "
                          "self-calibration, not both")
    if not _is(sc.frames, int) or sc.frames < MIN_FRAMES:
        raise ConfigError(f"{where}: frames must be an integer >= {MIN_FRAMES}")
    if not _is(sc.every_s, float) or sc.every_s < 0:
        raise ConfigError(f"{where}: every_s must be a number of seconds >= 0")
    if sc.mode not in MODES:
        raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, got {sc.mode!r}")
    for name in ("out", "buffer"):
        folder = Path(getattr(sc, name)).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            problem = None if os.access(folder, os.W_OK) else f"{folder} is read-only for this user"
        except OSError as exc:
            problem = f"{folder} cannot be made ({exc})"
        if problem and sc.enabled is None:  # on by default only: stay off rather than refuse to start
            log.warning("self-calibration off", extra={"why": f"{name} cannot be written: {problem}"})
            sc.enabled = False
            return
        if problem:
            raise ConfigError(f"{where}: {name} cannot be written: {problem} (put it beside the outbox, e.g. "
                              "/var/lib/parkcast)")
