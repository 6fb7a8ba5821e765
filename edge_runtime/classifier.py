"""The slot classifier at the edge: an ONNX model (fp32 or int8) taking [N, 3, S, S] normalised
patches (S read from the model) and answering P(occupied) per patch, optionally through this
camera's label-free calibration (edge_runtime.calibrate) and then its adapter fitted on labels
(edge_runtime.adapt). onnxruntime only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.adapt import Adapter, AdaptError, sha256
from edge_runtime.calibrate import load_calibration

MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS / "slot_classifier.int8.onnx"
# Patches per onnxruntime run: a model built with the optional teacher works at 224 px, and a
# frame's 100 slots in one run would hold hundreds of MB of activations. The packaged model runs as
# fast in chunks of 32 (4,491 patches/s on one core against 4,335 for 100 at once, this machine).
CHUNK = 32


class ModelError(ValueError):
    pass


class SlotClassifier:
    def __init__(self, model: Path | str | None = None, threads: int = 1, adapter: Path | str | None = None,
                 calibration: Path | str | None = None):
        import onnxruntime as ort

        self.path = Path(model or DEFAULT_MODEL)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such model (train one: `parkcast train-slots`)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own errors: a file that is not a model it can run
            raise ModelError(f"{self.path}: not an ONNX model onnxruntime can run ({str(exc)[:200]})") from None
        inputs = self.session.get_inputs()[0]
        self.input = inputs.name
        self.size = int(inputs.shape[-1]) if isinstance(inputs.shape[-1], int) else 48
        self.has_embedding = len(self.session.get_outputs()) > 1
        self.calibration = load_calibration(calibration) if calibration else None
        self.adapter = Adapter.load(adapter) if adapter else None
        for head, verb in ((self.calibration, "calibrate"), (self.adapter, "adapt")):
            if head is None:
                continue
            if not self.has_embedding:
                raise AdaptError(f"{self.path} has no embedding output: `parkcast-edge {verb}` needs a model "
                                 "trained by `parkcast train-slots` (probabilities + embedding)")
            if head.base_sha256 and head.base_sha256 != sha256(self.path):
                raise AdaptError(f"{head.path} was fitted to another model than {self.path}: "
                                 f"run `parkcast-edge {verb}` again with this model")
        if self.adapter is not None:
            used = sha256(self.calibration.path) if self.calibration is not None else ""
            fitted = self.adapter.calibration_sha256
            if fitted != used:
                why = ("was fitted on top of a calibration, and none is set" if not used else
                       f"was fitted without a calibration, and {self.calibration.path} is set" if not fitted else
                       f"was fitted on top of another calibration than {self.calibration.path}")
                raise AdaptError(f"{self.adapter.path} {why}: run `parkcast-edge adapt` again with the "
                                 "calibration you use (--calibration)")

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The base model's P(taken) [N] and its embedding [N, C] (None for a model without one)."""
        if len(batch) == 0:
            return np.empty(0, dtype=np.float32), None
        runs = [self.session.run(None, {self.input: batch[i : i + CHUNK]}) for i in range(0, len(batch), CHUNK)]
        return (np.concatenate([run[0][:, 1] for run in runs]),
                np.concatenate([run[1] for run in runs]) if self.has_embedding else None)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """[N] probability that each slot is occupied (adapted to this camera when an adapter is set)."""
        probabilities, embedding = self.calibrated_outputs(batch)  # the adapter reads the calibrated ones
        if self.adapter is None or len(probabilities) == 0:
            return probabilities
        return self.adapter(embedding, probabilities)

    def calibrated_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """P(taken) after the calibration (before any adapter) and the embedding: what adapt fits on."""
        probabilities, embedding = self.outputs(batch)
        if self.calibration is not None and len(probabilities):
            probabilities = self.calibration(embedding, probabilities)
        return probabilities, embedding
