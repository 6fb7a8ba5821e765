"""The label set a person corrects to adapt the model to their camera, and the adaptation itself.

A label set is a folder: patches/<frame>__<slot>.png (each slot exactly as the model sees it:
the perspective crop at the model's input size, lossless), labels.csv (path, occupied, slot_id,
frame, model_p) pre-filled with the model's guesses, and <frame>.overlay.png showing slot ids.
Several frames may share one folder: labelling a frame again replaces only that frame's rows.

A proposal set (`parkcast-edge propose`) holds the slots of a day of frames most worth labelling,
in order (a `rank` column), with `occupied` left blank: the person fills it in from the top until
they have 20 of each class; `adapt` leaves blank rows out (in a proposal set only: elsewhere an
empty `occupied` is an error).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from edge_runtime.adapt import MIN_PER_CLASS, check_labels, fit_head, replace_atomically, write_adapter
from edge_runtime.evaluate import read_labels
from edge_runtime.overlay import draw_overlay
from edge_runtime.preprocess import crop, to_array

COLUMNS = ["path", "occupied", "slot_id", "frame", "model_p"]
PROPOSED_PER_CLASS = 3  # a proposal set lists this many rows per label wanted: enough to reach k of each


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class LabelSetError(ValueError):
    pass


def write_rows(path: Path, columns: list[str], rows: list[dict]) -> None:
    """A labels.csv, replaced whole or not at all (a person's corrections may be in the old one)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    replace_atomically(path, lambda fh: fh.write(text.getvalue().encode()))


def corrected_rows(labels: Path, frame_name: str) -> int:
    """How many of a frame's rows in labels.csv a person changed from the model's guess."""
    if not labels.exists():
        return 0
    with open(labels, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("frame") == frame_name]
    try:
        return sum(int(r["occupied"]) != int(float(r["model_p"]) >= 0.5) for r in rows)
    except (KeyError, TypeError, ValueError):  # hand-edited beyond the columns: treat every row as a person's
        return len(rows)


def write_label_set(image: Image.Image, frame_name: str, slot_map, classifier, out: Path,
                    replace: bool = False) -> dict:
    """Write a frame's patches, its rows of labels.csv and its overlay. Refuses slot ids that
    would share a patch file, and a frame whose rows a person already corrected (unless `replace`)."""
    out = Path(out)
    names: dict[str, str] = {}
    for slot in slot_map.slots:
        other = names.setdefault(_safe(slot.slot_id), slot.slot_id)
        if other != slot.slot_id:
            raise LabelSetError(f"slots {other!r} and {slot.slot_id!r} would share the patch file "
                                f"{_safe(frame_name)}__{_safe(slot.slot_id)}.png: rename one in the slot map")
    corrected = corrected_rows(out / "labels.csv", frame_name)
    if corrected and not replace:
        raise LabelSetError(f"{out / 'labels.csv'} already holds {corrected} corrected row(s) for frame "
                            f"{frame_name!r}; labelling it again would replace them: pass --replace to do so, or "
                            "use another --out folder (or rename the frame file)")
    (out / "patches").mkdir(parents=True, exist_ok=True)
    patches = [crop(image, s.points, classifier.size) for s in slot_map.slots]
    probabilities = classifier.predict(to_array(patches, classifier.size))
    rows = []
    for slot, patch, p in zip(slot_map.slots, patches, probabilities, strict=True):
        path = Path("patches") / f"{_safe(frame_name)}__{_safe(slot.slot_id)}.png"
        patch.save(out / path)
        rows.append({"path": path.as_posix(), "occupied": int(p >= 0.5), "slot_id": slot.slot_id,
                     "frame": frame_name, "model_p": f"{p:.3f}"})
    labels = out / "labels.csv"
    if labels.exists():  # keep the other frames' (perhaps corrected) rows
        with open(labels, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("frame") != frame_name] + rows
    write_rows(labels, COLUMNS, rows)
    overlay = out / f"{_safe(frame_name)}.overlay.png"
    draw_overlay(image, slot_map, probabilities >= 0.5).save(overlay)
    return {"frame": frame_name, "slots": len(rows), "labels": str(labels), "overlay": str(overlay),
            "guessed_taken": int((probabilities >= 0.5).sum())}


def adapt_from_labels(labels_paths: list[Path], classifier, out: Path) -> dict:
    """Fit and write an adapter for `classifier`'s model (and its calibration, when it has one)
    from corrected label sets."""
    if classifier.adapter is not None or not classifier.has_embedding:
        raise ValueError("adapt needs the base model (with an embedding output, calibrated or not), "
                         "not an adapted one")
    inputs = [*labels_paths, classifier.path] + ([classifier.calibration.path] if classifier.calibration else [])
    if any(Path(out).resolve() == Path(p).resolve() for p in inputs):
        raise ValueError(f"--out {out} would overwrite one of adapt's own inputs: name a new file, e.g. adapter.json")
    rows = [row for path in labels_paths for row in read_labels(path, blank_unlabelled=True)]
    occupied = np.array([o for _, o in rows])
    check_labels(occupied)  # before reading any image: a clear message first
    probabilities, embedding = [], []
    for start in range(0, len(rows), 256):
        batch = []
        for path, _ in rows[start : start + 256]:
            if not path.exists():
                raise ValueError(f"{path}: no such patch (labels.csv paths are relative to the CSV)")
            batch.append(Image.open(path))
        p, e = classifier.calibrated_outputs(to_array(batch, classifier.size))
        probabilities.append(p)
        embedding.append(e)
    probabilities, embedding = np.concatenate(probabilities), np.concatenate(embedding)
    head = fit_head(embedding, probabilities, occupied)
    counts = {"free": int((~occupied).sum()), "taken": int(occupied.sum())}
    calibration = classifier.calibration.path if classifier.calibration is not None else None
    write_adapter(out, head, classifier.path, counts | {"files": [str(p) for p in labels_paths]}, calibration)
    return {"n": len(rows), **counts, "base_accuracy": head["base_accuracy"], "cv_accuracy": head["cv_accuracy"],
            "strength": head["strength"], "out": str(out), "min_per_class": MIN_PER_CLASS}


def write_proposal_set(frames: list[Path], slot_map, classifier, out: Path, per_class: int = 20) -> dict:
    """The slots of `frames` most worth labelling (edge_runtime.proposals), in order: their patches
    and a labels.csv with `occupied` blank, PROPOSED_PER_CLASS x 2 x per_class rows at most.
    Refuses a folder that already holds a labels.csv (it may hold a person's labels)."""
    from edge_runtime.preprocess import crop_all, open_frame
    from edge_runtime.proposals import proposal_order

    out = Path(out)
    if (out / "labels.csv").exists():
        raise LabelSetError(f"{out / 'labels.csv'} exists (it may hold your labels): use another --out folder")
    if per_class < MIN_PER_CLASS:
        raise LabelSetError(f"--per-class {per_class}: adapt needs at least {MIN_PER_CLASS} labels of each class")
    if not classifier.has_embedding:
        raise LabelSetError(f"{classifier.path} has no embedding output: proposals need a model trained by "
                            "`parkcast train-slots`")
    if len({f.stem for f in frames}) < len(frames):
        raise LabelSetError("two frames share a name (before the extension): their patches would share files")
    embedding, probabilities, where = [], [], []
    for frame in frames:
        p, e = classifier.calibrated_outputs(crop_all(open_frame(frame, slot_map, LabelSetError), slot_map,
                                                      classifier.size))
        probabilities.append(p)
        embedding.append(e)
        where += [(frame, slot) for slot in slot_map.slots]
    if len(where) < 2 * per_class:
        raise LabelSetError(f"{len(frames)} frame(s) give {len(where)} slot patches: propose needs at least "
                            f"{2 * per_class} (more frames, over a day)")
    order = proposal_order(np.concatenate(embedding), 2 * per_class)[: PROPOSED_PER_CLASS * 2 * per_class]
    probabilities = np.concatenate(probabilities)
    (out / "patches").mkdir(parents=True, exist_ok=True)
    rows, chosen = [], {}
    for rank, i in enumerate(order, start=1):
        frame, slot = where[i]
        path = f"patches/{_safe(frame.stem)}__{_safe(slot.slot_id)}.png"
        chosen.setdefault(frame, []).append((path, slot))
        rows.append({"rank": rank, "path": path, "occupied": "", "slot_id": slot.slot_id, "frame": frame.stem,
                     "model_p": f"{probabilities[i]:.3f}"})
    for frame, patches in chosen.items():  # each frame opened once more, one at a time (a Pi's memory)
        image = Image.open(frame).convert("RGB")
        for path, slot in patches:
            crop(image, slot.points, classifier.size).save(out / path)
    write_rows(out / "labels.csv", ["rank", *COLUMNS], rows)
    return {"frames": len(frames), "patches": len(where), "proposed": len(rows), "per_class": per_class,
            "labels": str(out / "labels.csv")}
