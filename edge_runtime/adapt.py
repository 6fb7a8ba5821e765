"""Few-shot adaptation to a new camera, in numpy, on the Pi (no torch).

The ONNX model answers P(taken) and the embedding its linear head reads. An adapter is a new
logistic head over [embedding / scale, base logit]: it starts as "the base model" (weight 1 on
the base logit, 0 elsewhere) and moves away from it only as far as the person's labels justify,
an L2 pull towards that start whose strength is chosen by 10-fold cross-validation on those labels. A few
labels recalibrate (shift, sharpen) the base model; more labels re-weight the features.
Deterministic (Newton's method, no randomness), well under a second for hundreds of labels.

The adapter is a small JSON file bound to its base model by SHA-256, so it can't silently be
applied to another model.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

MIN_PER_CLASS = 3
# L2 pull towards the base model; CV picks one. 1e6: the base model with its threshold moved only.
STRENGTHS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 1e6)
CV_FOLDS = 10
EPS = 1e-6


class AdaptError(ValueError):
    pass


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -30, 30)))


def design(embedding: np.ndarray, probabilities: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """[N, C + 2]: standardised embedding, the base model's logit, 1 (bias)."""
    n = len(embedding)
    z = (np.asarray(embedding, dtype=np.float64) - center) / scale
    return np.hstack([z, logit(probabilities)[:, None], np.ones((n, 1))])


def standardisation(embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature centre and scale of these patches; a floor so a feature constant on them stays small."""
    center = embedding.mean(axis=0)
    return center, np.maximum(embedding.std(axis=0), 0.1 * float(np.sqrt(np.mean(np.square(embedding - center)))) + EPS)


def start(dim: int) -> np.ndarray:
    theta = np.zeros(dim)
    theta[-2] = 1.0  # the base model's logit, unchanged
    return theta


def newton(x: np.ndarray, y: np.ndarray, weights: np.ndarray, strength: float, iterations: int = 25,
           theta0: np.ndarray | None = None, pull: np.ndarray | None = None) -> np.ndarray:
    """argmin sum_i w_i CE(y_i, sigmoid(x_i theta)) / sum w + 1/2 sum_j pull_j (theta_j - theta0_j)^2;
    by default theta0 is the base model and pull_j = strength for every weight (the bias is free)."""
    theta0 = start(x.shape[1]) if theta0 is None else theta0
    theta = theta0.copy()
    if pull is None:
        pull = np.full(x.shape[1], strength)
        pull[-1] = 0.0  # the bias is free to move
    w = weights / weights.sum()
    for _ in range(iterations):
        p = sigmoid(x @ theta)
        grad = x.T @ (w * (p - y)) + pull * (theta - theta0)
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(pull + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta


def class_weights(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y.astype(int), minlength=2).astype(np.float64)
    return np.where(y == 1, len(y) / (2 * counts[1]), len(y) / (2 * counts[0]))


def check_labels(occupied: np.ndarray) -> None:
    counts = np.bincount(np.asarray(occupied, dtype=int), minlength=2)
    if counts.min() == 0:
        only = "taken" if counts[1] else "free"
        raise AdaptError(f"all {len(occupied)} labels say {only}: label at least {MIN_PER_CLASS} free and "
                         f"{MIN_PER_CLASS} taken slots (another frame, another time of day)")
    if counts.min() < MIN_PER_CLASS:
        raise AdaptError(f"too few labels: {counts[0]} free and {counts[1]} taken; need at least {MIN_PER_CLASS} "
                         "of each (20 of each gives the best results)")


def fit_head(embedding: np.ndarray, probabilities: np.ndarray, occupied: np.ndarray, basis: dict | None = None) -> dict:
    """The adapter's head from labelled patches (their embeddings and base probabilities). A `basis`
    (center, scale, components: benchmarks/slots_subspace.py, a tie, not used by `adapt`) lets the
    head move only along those directions; the head it returns reads the full embedding either way."""
    y = np.asarray(occupied, dtype=np.float64)
    check_labels(y)
    embedding = np.asarray(embedding, dtype=np.float64)
    if basis is None:
        center, scale, components = *standardisation(embedding), None  # on the person's labels
    else:
        center, scale, components = basis["center"], basis["scale"], basis["components"]
    x = design(embedding, probabilities, center, scale)
    if components is not None:
        x = np.hstack([x[:, :-2] @ components.T, x[:, -2:]])
    weights = class_weights(y)
    folds = np.arange(len(y)) % min(len(y), CV_FOLDS)  # deterministic: every k-th label
    cv, right = {}, {}
    for strength in STRENGTHS:  # cross-validation on the person's own labels
        losses, hits = np.zeros(len(y)), 0
        for fold in np.unique(folds):
            out = folds == fold
            theta = newton(x[~out], y[~out], weights[~out], strength)
            p = sigmoid(x[out] @ theta)
            losses[out] = -weights[out] * np.log(np.maximum(np.where(y[out] == 1, p, 1 - p), EPS))
            hits += int(((p >= 0.5) == (y[out] == 1)).sum())
        cv[strength], right[strength] = float(losses.mean()), hits / len(y)
    base = float(((x[:, -2] > 0) == (y == 1)).mean())
    if base == 1.0 or max(right.values()) < base:
        # Do no harm: the model as trained gets every label right, or nothing fitted on these labels
        # predicts held-out ones as well as it does: the adapter keeps it as it is.
        strength, theta = None, start(x.shape[1])
    else:
        strength = min(STRENGTHS, key=lambda s: (cv[s], -s))  # ties: the stronger pull, nearer the base
        theta = newton(x, y, weights, strength)
    if components is not None:
        theta = np.concatenate([components.T @ theta[:-2], theta[-2:]])  # back to the full embedding
    return {"center": center.tolist(), "scale": scale.tolist(), "weights": theta[:-1].tolist(),
            "bias": float(theta[-1]), "strength": strength,
            "cv_log_loss": round(cv[strength], 4) if strength else None, "base_accuracy": round(base, 4),
            "cv_accuracy": round(right[strength] if strength else base, 4)}


class Adapter:
    """A fitted head applied after the ONNX model."""

    def __init__(self, head: dict, base_sha256: str = "", path: Path | None = None, calibration_sha256: str = ""):
        self.center = np.asarray(head["center"], dtype=np.float64)
        self.scale = np.asarray(head["scale"], dtype=np.float64)
        self.theta = np.array([*head["weights"], head["bias"]], dtype=np.float64)
        self.base_sha256, self.path = base_sha256, path
        self.calibration_sha256 = calibration_sha256  # fitted on top of this calibration ("" for none)

    def __call__(self, embedding: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        if embedding.shape[1] + 2 != len(self.theta):
            raise AdaptError(f"adapter expects a {len(self.theta) - 2}-wide embedding, the model gives "
                             f"{embedding.shape[1]}")
        z = design(embedding, probabilities, self.center, self.scale) @ self.theta
        return sigmoid(z).astype(np.float32)

    @classmethod
    def load(cls, path: Path | str, kind: str = "adapter", error: type[AdaptError] = AdaptError) -> Adapter:
        """An adapter file, or (kind "calibration") a calibration file: the same head, made by
        `parkcast-edge adapt` or `calibrate`; one is refused where the other is expected."""
        path = Path(path)
        verb = "adapt" if kind == "adapter" else "calibrate"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise error(f"{path}: no such {kind} (make one: parkcast-edge {verb})") from None
        except json.JSONDecodeError as exc:
            raise error(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != 1 or "head" not in data \
                or data.get("kind", "adapter") != kind:
            raise error(f"{path}: not a parkcast {kind} (expected a version 1 file from `parkcast-edge {verb}`"
                        + (f"; this one is a {data['kind']}" if isinstance(data, dict) and "kind" in data else "")
                        + ")")
        try:
            return cls(data["head"], data.get("base_model", {}).get("sha256", ""), path,
                       (data.get("calibration") or {}).get("sha256", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise error(f"{path}: malformed head ({exc})") from None


def write_adapter(path: Path | str, head: dict, base_model: Path, labels: dict,
                  calibration: Path | None = None) -> dict:
    document = {**base_model_header(base_model), "labels": labels, "head": head}
    if calibration is not None:  # fitted on the calibrated model's output: only valid with that calibration
        document["calibration"] = {"file": Path(calibration).name, "sha256": sha256(calibration)}
    return write_document(path, document)


def base_model_header(base_model: Path) -> dict:
    """What every head file starts with: its format version, when, and the model it is bound to."""
    return {"version": 1, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "base_model": {"file": Path(base_model).name, "sha256": sha256(base_model)}}


def write_document(path: Path | str, document: dict) -> dict:
    replace_atomically(path, lambda fh: fh.write(json.dumps(document, indent=1).encode()))
    return document


def replace_atomically(path: Path | str, write) -> None:
    """Write `path` through `write(binary file)` so that a crash or a power cut leaves the old
    file or the new one, never half of one: a temporary file, flushed to disk, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
