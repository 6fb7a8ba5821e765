"""The daemon calibrates itself (edge.toml `[self_calibration]`): the same label-free calibration
as `parkcast-edge calibrate`, from frames the daemon collects while it runs, so a new camera
gets it without anyone recording frames by hand.

While no calibration exists yet, every frame at least `every_s` after the last one kept adds the
base model's outputs for every slot (P(taken), and in `full` or `auto` mode the embedding; no image is kept)
to a buffer on disk, replaced atomically, so a restart loses nothing. `mode` is that of
edge_runtime.calibrate: `threshold` (the default) only moves the model's decision threshold;
`auto` uses the full calibration where it leaves the threshold's sure calls alone.
Once `frames` frames are in, the calibration is fitted (edge_runtime.calibrate), written to `out`
(bound to the model by SHA-256) and used from the next frame on; the buffer is removed. If the
frames do not allow a calibration (an empty or full car park all day) or it cannot be written,
the older half of the buffer is dropped and collecting goes on. The calibration is fitted once:
delete `out` to start again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path

import numpy as np

from edge_runtime.adapt import Adapter, AdaptError, replace_atomically, sha256
from edge_runtime.calibrate import calibrate_outputs, load_calibration, reads_embedding

log = logging.getLogger("parkcast.edge")


def slot_map_key(slot_map) -> str:
    """What the collected outputs depend on besides the model: the slots' ids and corners (a slot
    map redrawn after the camera moved starts the collection again)."""
    return hashlib.sha256(json.dumps([[s.slot_id, s.points] for s in slot_map.slots]).encode()).hexdigest()


def made_for_another(found: tuple[str, str, str], wanted: tuple[str, str, str]) -> str | None:
    """Why a buffer or calibration made for (model SHA-256, slot map key, mode) `found` does not
    serve `wanted`, or None when it does."""
    (model, slots, mode), (model_wanted, slots_wanted, mode_wanted) = found, wanted
    if model != model_wanted:
        return "for another model"
    if slots != slots_wanted:
        return "for another slot map"
    return None if mode == mode_wanted else f"in {mode} mode, and the config says {mode_wanted}"


def set_aside(path: Path, why: str) -> None:
    try:
        path.replace(path.with_name(path.name + ".stale"))
    except OSError as exc:
        log.warning("could not set a self-calibration file aside", extra={"file": str(path), "error": str(exc)})
        return
    log.warning(f"self-calibration file set aside ({why}); calibrating again", extra={"file": str(path)})


def existing_calibration(out: Path | str, model: Path, slot_map, mode: str) -> Path | None:
    """The calibration self-calibration wrote earlier, if it is a valid one for this model, slot
    map and mode. One made for another model (the model was updated), another slot map (the camera
    moved), in the other mode, or unreadable, is set aside as `out.stale` and calibration starts
    again, rather than stopping the daemon. A file of `parkcast-edge calibrate` at that path (no
    slot map recorded) is kept."""
    out = Path(out)
    if not out.exists() or not Path(model).exists():  # no model: the classifier says so, clearly
        return None
    wanted = (sha256(model), slot_map_key(slot_map), mode)
    try:
        made = json.loads(out.read_text()).get("frames") or {}
        # A file of `parkcast-edge calibrate`, or of the daemon before it recorded them, holds no
        # slot map or mode: it is taken to match.
        found = (load_calibration(out).base_sha256, made.get("slot_map", wanted[1]), made.get("mode", mode))
        why = made_for_another(found, wanted)
        if why is None:
            return out
        why = f"made {why}"
    except (AdaptError, ValueError, AttributeError, RecursionError, OSError) as exc:  # unreadable or odd
        why = str(exc) or type(exc).__name__
    set_aside(out, why)
    return None


def adapter_base(adapter: Path | str, out: Path | str) -> Path | None:
    """The daemon's own calibration `out` when `adapter` was fitted on top of it (`adapt
    --calibration out`): with self-calibration left unset, an adapter turns it off, but the pair
    must stay together. Anything else is left to the classifier's own checks and messages."""
    out = Path(out)
    try:
        fitted_on = Adapter.load(adapter).calibration_sha256
    except AdaptError:
        return None
    return out if fitted_on and out.exists() and sha256(out) == fitted_on else None


class SelfCalibration:
    def __init__(self, out: Path | str, buffer: Path | str, frames: int, every_s: float, model: Path, slot_map,
                 mode: str = "threshold"):
        self.out, self.buffer, self.frames, self.every_s = Path(out), Path(buffer), frames, every_s
        self.model, self.slot_ids = Path(model), np.asarray([s.slot_id for s in slot_map.slots])
        self.mode, self.slot_map_key = mode, slot_map_key(slot_map)
        # a buffer collected in the other mode lacks (or needlessly holds) the embeddings: start again
        self.made_for = (sha256(model), self.slot_map_key, mode)
        self.key = ":".join(self.made_for)
        self.probabilities: list[np.ndarray] = []
        self.embeddings: list[np.ndarray] = []
        self.times: list[str] = []
        self.width = 0  # the embedding's, which a threshold head still spans
        self._load()

    @property
    def collected(self) -> int:
        return len(self.times)

    def wants(self, now: datetime) -> bool:
        """Whether the frame seen at `now` should be kept (spread over the day, not a burst). A last
        frame kept in the future (a clock set back since) does not stop the collection."""
        if not self.times:
            return True
        elapsed = (now - datetime.fromisoformat(self.times[-1])).total_seconds()
        return elapsed < 0 or elapsed >= self.every_s

    def add(self, now: datetime, probabilities: np.ndarray, embedding: np.ndarray) -> dict | None:
        """Keep one frame's base outputs; returns the calibration's head once it is fitted and written."""
        if embedding is None or not len(probabilities) == len(embedding) == len(self.slot_ids):
            raise ValueError(f"{len(probabilities)} outputs for {len(self.slot_ids)} slots")
        self.width = embedding.shape[1]
        self.probabilities.append(np.asarray(probabilities, dtype=np.float32))
        if reads_embedding(self.mode):
            self.embeddings.append(np.asarray(embedding, dtype=np.float32))
        self.times.append(now.isoformat())
        if self.collected < self.frames:
            self._save()
            return None
        try:
            head = calibrate_outputs(self.probabilities, self.embeddings if reads_embedding(self.mode) else self.width,
                                     np.tile(self.slot_ids, self.collected), self.model, self.out,
                                     {"count": self.collected, "slots": len(self.slot_ids), "first": self.times[0],
                                      "last": self.times[-1], "by": "daemon self-calibration",
                                      "slot_map": self.slot_map_key, "mode": self.mode}, self.mode)
        except Exception as exc:  # noqa: BLE001 - e.g. a full car park all day, or `out` not writable
            drop = self.collected - self.collected // 2
            log.warning("self-calibration not possible yet; dropping the older frames and collecting on",
                        extra={"error": str(exc), "dropped": drop})
            self.probabilities, self.embeddings, self.times = \
                self.probabilities[drop:], self.embeddings[drop:], self.times[drop:]  # [] stays [] (threshold)
            self._save()
            return None
        self.buffer.unlink(missing_ok=True)
        return head

    def _save(self) -> None:
        embeddings = np.stack(self.embeddings) if self.embeddings else np.zeros((0, 0, self.width), np.float32)
        replace_atomically(self.buffer, lambda fh: np.savez(
            fh, probabilities=np.stack(self.probabilities), embeddings=embeddings,
            times=np.array(self.times), key=np.array(self.key)))

    def _load(self) -> None:
        if not self.buffer.exists():
            return
        try:
            with np.load(self.buffer) as saved:
                found = str(saved["key"]).split(":")
                found += ["full"] * (len(found) == 2)  # before modes existed every buffer was full
                if reads_embedding(found[2]) and reads_embedding(self.mode):
                    found[2] = self.mode  # full and auto collect the same outputs: keep the frames
                why = made_for_another(tuple(found), self.made_for)
                if why is not None:
                    set_aside(self.buffer, f"collected {why}")
                    return
                probabilities, embeddings = list(saved["probabilities"]), list(saved["embeddings"])
                times = [str(t) for t in saved["times"]]
                width = int(saved["embeddings"].shape[-1])
                consistent = len(probabilities) == len(times) \
                    and all(len(p) == len(self.slot_ids) for p in probabilities) \
                    and (not reads_embedding(self.mode) or len(embeddings) == len(times))
        except Exception as exc:  # noqa: BLE001 - a damaged buffer must not stop the daemon
            set_aside(self.buffer, f"unreadable: {exc}")
            return
        if not consistent:
            set_aside(self.buffer, "inconsistent")
            return
        self.probabilities, self.embeddings, self.times, self.width = probabilities, embeddings, times, width
