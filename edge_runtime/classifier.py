"""The slot classifier at the edge: an ONNX model (fp32 or int8) taking [N, 3, 48, 48]
normalised patches and answering P(occupied) per patch. onnxruntime only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS / "slot_classifier.int8.onnx"


class SlotClassifier:
    def __init__(self, model: Path | str | None = None, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(model or DEFAULT_MODEL)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such model (train one: `parkcast train-slots`)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """[N] probability that each slot is occupied."""
        if len(batch) == 0:
            return np.empty(0, dtype=np.float32)
        return self.session.run(None, {self.input: batch})[0][:, 1]
