"""Accuracy of a slot classifier: on labelled patches (path,occupied CSV) or on labelled frames
through the whole frame -> slot map -> crop -> classify path."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from edge_runtime.preprocess import crop_all, to_array


def scores(truth, predicted) -> dict:
    t, p = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    tp, tn = int((t & p).sum()), int((~t & ~p).sum())
    fp, fn = int((~t & p).sum()), int((t & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": len(t), "accuracy": round((tp + tn) / len(t), 4) if len(t) else 0.0,
        "precision": round(precision, 4), "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        # rows: truth free/occupied; columns: predicted free/occupied
        "confusion": [[tn, fp], [fn, tp]],
    }


def read_labels(labels_csv: Path, split: str | None = None, blank_unlabelled: bool = False) -> list[tuple[Path, bool]]:
    """(patch path, occupied) rows; paths are relative to the CSV; `split` keeps the rows of one
    value of a `split` column (CNRPark's manifest: train / val). `blank_unlabelled`: in a proposal
    set (`parkcast-edge propose`, which writes a `rank` column), a row with an empty `occupied` is
    one nobody labelled yet and is left out; anywhere else an empty cell is an error, as a label
    lost by a slip of the hand must not pass unnoticed."""
    labels_csv = Path(labels_csv)
    with open(labels_csv, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "occupied"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{labels_csv}: missing column(s) {', '.join(sorted(missing))} (need path,occupied)")
        rows, lines = [], {}
        blank_unlabelled = blank_unlabelled and "rank" in (reader.fieldnames or [])
        for i, row in enumerate(reader, start=2):
            if split is not None and row.get("split") != split:
                continue
            occupied, name = (row.get("occupied") or "").strip(), (row.get("path") or "").strip()
            if blank_unlabelled and not occupied:
                continue
            if occupied not in ("0", "1"):
                raise ValueError(f"{labels_csv}:{i}: occupied must be 0 or 1, got {row.get('occupied')!r}")
            if not name:
                raise ValueError(f"{labels_csv}:{i}: no patch path")
            path = labels_csv.parent / name
            # One patch counted twice would pass the per-class minimum and leak into its own
            # cross-validation fold: each patch once.
            key = path.resolve()
            if key in lines:
                raise ValueError(f"{labels_csv}:{i}: patch {name} is already on line {lines[key]}; keep one row")
            lines[key] = i
            rows.append((path, occupied == "1"))
    if not rows:
        raise ValueError(f"{labels_csv}: no " + ("labelled rows (fill in the occupied column: 1 taken, 0 free)"
                                                 if blank_unlabelled else "rows"))
    return rows


def evaluate_patches(classifier, labels_csv: Path, threshold: float = 0.5, batch: int = 256,
                     split: str | None = None) -> dict:
    rows = read_labels(labels_csv, split)
    probs = []
    for start in range(0, len(rows), batch):
        patches = [Image.open(path) for path, _ in rows[start : start + batch]]
        probs.append(classifier.predict(to_array(patches, classifier.size)))
    return scores([o for _, o in rows], np.concatenate(probs) >= threshold)


def evaluate_frames(classifier, frames: list[tuple[Path, object]], threshold: float = 0.5) -> dict:
    """frames: (image path, SlotMap with labels); unlabelled slots are left out."""
    truth, predicted = [], []
    for image, slot_map in frames:
        probs = classifier.predict(crop_all(Image.open(image), slot_map, classifier.size))
        for slot, prob in zip(slot_map.slots, probs, strict=True):
            if slot.occupied is not None:
                truth.append(slot.occupied)
                predicted.append(prob >= threshold)
    return scores(truth, predicted)
