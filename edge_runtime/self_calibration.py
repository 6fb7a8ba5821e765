"""The daemon calibrates itself (edge.toml `[self_calibration]`): the same label-free calibration
as `parkcast-edge calibrate`, from frames the daemon collects while it runs, so a new camera
gets it without anyone recording frames by hand.

While no calibration exists yet, every frame at least `every_s` after the last one kept adds the
base model's outputs for every slot (P(taken) and the embedding; no image is kept) to a buffer on
disk, so a restart loses nothing. Once `frames` frames are in, the calibration is fitted
(edge_runtime.calibrate), written to `out` (bound to the model by SHA-256) and used from the next
frame on; the buffer is removed. If the frames do not allow a calibration (an empty or full car
park all day), the older half of the buffer is dropped and collecting goes on. The calibration
is fitted once: delete `out` to start again.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import numpy as np

from edge_runtime.adapt import sha256
from edge_runtime.calibrate import MIN_FRAMES, CalibrationError, fit_calibration, write_calibration

log = logging.getLogger("parkcast.edge")


def existing_calibration(out: Path | str, model: Path) -> Path | None:
    """The calibration self-calibration wrote earlier, if it is for this model. One made for
    another model (the model was updated) is set aside as `out.stale` and calibration starts again,
    rather than stopping the daemon."""
    out = Path(out)
    if not out.exists():
        return None
    try:
        fitted_to = json.loads(out.read_text())["base_model"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        fitted_to = None
    if fitted_to == sha256(model):
        return out
    out.replace(out.with_name(out.name + ".stale"))
    log.warning("self-calibration was for another model (or unreadable); set aside, calibrating again",
                extra={"calibration": str(out)})
    return None


class SelfCalibration:
    def __init__(self, out: Path | str, buffer: Path | str, frames: int, every_s: float, model: Path,
                 slot_ids: list[str]):
        if frames < MIN_FRAMES:
            raise CalibrationError(f"self-calibration needs at least {MIN_FRAMES} frames, not {frames}")
        self.out, self.buffer, self.frames, self.every_s = Path(out), Path(buffer), frames, every_s
        self.model, self.model_sha256, self.slot_ids = Path(model), sha256(model), np.asarray(slot_ids)
        self.probabilities: list[np.ndarray] = []
        self.embeddings: list[np.ndarray] = []
        self.times: list[str] = []
        self._load()

    @property
    def collected(self) -> int:
        return len(self.times)

    def wants(self, now: datetime) -> bool:
        """Whether the frame seen at `now` should be kept (spread over the day, not a burst)."""
        return not self.times or (now - datetime.fromisoformat(self.times[-1])).total_seconds() >= self.every_s

    def add(self, now: datetime, probabilities: np.ndarray, embedding: np.ndarray) -> dict | None:
        """Keep one frame's base outputs; returns the calibration's head once it is fitted and written."""
        if len(probabilities) != len(self.slot_ids) or embedding is None or len(embedding) != len(self.slot_ids):
            raise CalibrationError(f"{len(probabilities)} outputs for {len(self.slot_ids)} slots")
        self.probabilities.append(np.asarray(probabilities, dtype=np.float32))
        self.embeddings.append(np.asarray(embedding, dtype=np.float32))
        self.times.append(now.isoformat())
        if self.collected < self.frames:
            self._save()
            return None
        try:
            head = fit_calibration(np.concatenate(self.embeddings), np.concatenate(self.probabilities),
                                   np.tile(self.slot_ids, self.collected))
        except CalibrationError as exc:
            drop = self.collected - self.collected // 2
            log.warning("self-calibration not possible yet; dropping the older frames and collecting on",
                        extra={"error": str(exc), "dropped": drop})
            self.probabilities, self.embeddings, self.times = \
                self.probabilities[drop:], self.embeddings[drop:], self.times[drop:]
            self._save()
            return None
        write_calibration(self.out, head, self.model, {"count": self.collected, "slots": len(self.slot_ids),
                                                        "first": self.times[0], "last": self.times[-1],
                                                        "by": "daemon self-calibration"})
        self.buffer.unlink(missing_ok=True)
        return head

    def _save(self) -> None:
        self.buffer.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.buffer.with_name(self.buffer.name + ".tmp.npz")
        np.savez(tmp, probabilities=np.stack(self.probabilities), embeddings=np.stack(self.embeddings),
                 times=np.array(self.times), slot_ids=self.slot_ids, model_sha256=np.array(self.model_sha256))
        tmp.replace(self.buffer)  # never a half-written buffer

    def _load(self) -> None:
        if not self.buffer.exists():
            return
        try:
            with np.load(self.buffer) as saved:
                same = (str(saved["model_sha256"]) == self.model_sha256
                        and np.array_equal(saved["slot_ids"], self.slot_ids))
                if same:
                    self.probabilities = list(saved["probabilities"])
                    self.embeddings = list(saved["embeddings"])
                    self.times = [str(t) for t in saved["times"]]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("self-calibration buffer unreadable; starting again", extra={"error": str(exc)})
            return
        if not same:
            log.warning("self-calibration buffer is for another model or slot map; starting again",
                        extra={"buffer": str(self.buffer)})
