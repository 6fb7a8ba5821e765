"""Labelled slot patches from the two kinds of source, as uint8 arrays [N, size, size, 3]:

- a patch set (CSV: path, occupied [, split, time]) such as CNRPark's 150x150 crops, resized;
- labelled frames (JPEG + PKLot XML), each slot cut out with edge_runtime.preprocess.crop, the
  perspective crop the Pi runs, so a model is trained and judged on what the edge will feed it.

Each patch carries a group (the frame or capture time it comes from) so that few-shot draws and
splits can keep neighbouring views of one parked car together.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edge_runtime.preprocess import crop
from edge_runtime.slotmap import load_slot_map


@dataclass
class PatchSet:
    name: str
    images: np.ndarray  # [N, size, size, 3] uint8
    occupied: np.ndarray  # [N] bool
    groups: np.ndarray  # [N] str: frame (or capture time) of each patch

    def __len__(self) -> int:
        return len(self.occupied)

    def subset(self, mask) -> PatchSet:
        return PatchSet(self.name, self.images[mask], self.occupied[mask], self.groups[mask])

    @staticmethod
    def concat(name: str, parts: list[PatchSet]) -> PatchSet:
        return PatchSet(name, np.concatenate([p.images for p in parts]), np.concatenate([p.occupied for p in parts]),
                        np.concatenate([p.groups for p in parts]))


def load_patch_csv(labels_csv: Path, size: int, split: str | None = None, name: str | None = None) -> PatchSet:
    labels_csv = Path(labels_csv)
    with open(labels_csv, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if split is None or r.get("split") == split]
    if not rows:
        raise ValueError(f"{labels_csv}: no rows" + (f" with split={split}" if split else ""))
    images = np.stack([np.asarray(Image.open(labels_csv.parent / r["path"]).convert("RGB")
                                  .resize((size, size), Image.Resampling.BILINEAR)) for r in rows])
    occupied = np.array([r["occupied"].strip() == "1" for r in rows])
    groups = np.array([r.get("time") or r.get("split") or "all" for r in rows])
    return PatchSet(name or labels_csv.parent.name, images, occupied, groups)


def load_frames(folder: Path, size: int, name: str | None = None, frames: list[str] | None = None) -> PatchSet:
    """Every labelled slot of every <frame>.jpg + <frame>.xml in folder (unlabelled slots left out)."""
    folder = Path(folder)
    xmls = sorted(folder.glob("*.xml"))
    if frames is not None:
        xmls = [x for x in xmls if x.stem in set(frames)]
    if not xmls:
        raise ValueError(f"{folder}: no labelled frames (<frame>.jpg + <frame>.xml)")
    images, occupied, groups = [], [], []
    for xml in xmls:
        slot_map = load_slot_map(xml)
        frame = Image.open(xml.with_suffix(".jpg")).convert("RGB")
        for slot in slot_map.slots:
            if slot.occupied is None:
                continue
            images.append(np.asarray(crop(frame, slot.points, size)))
            occupied.append(slot.occupied)
            groups.append(xml.stem)
    return PatchSet(name or folder.parent.name, np.stack(images), np.array(occupied), np.array(groups))


def cached(key: str, load, cache_dir: Path | None) -> PatchSet:
    """load() once per key into cache_dir as .npz (decoding and cropping thousands of patches
    costs more than a short training run)."""
    if cache_dir is None:
        return load()
    path = Path(cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        data = np.load(path)
        return PatchSet(str(data["name"]), data["images"], data["occupied"], data["groups"])
    result = load()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, name=result.name, images=result.images, occupied=result.occupied, groups=result.groups)
    return result
