"""From frame to classifier input, shared by training and the edge: each slot polygon is
perspective-cropped to a PATCH x PATCH square (Pillow, no OpenCV), then scaled to [0, 1] and
normalised per channel."""

from __future__ import annotations

import numpy as np
from PIL import Image

PATCH = 48  # classifier input side, pixels
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def open_frame(path, slot_map, error: type[Exception]) -> Image.Image:
    """A frame as RGB, checked against the slot map; `error` says what is wrong with it (for the
    commands that read a folder of frames: calibrate, propose)."""
    from edge_runtime.slotmap import SlotMapError, validate

    try:
        image = Image.open(path).convert("RGB")
    except OSError as exc:  # UnidentifiedImageError included
        raise error(f"{path}: not a readable image ({exc})") from None
    try:
        validate(slot_map, image.size)
    except SlotMapError as exc:
        raise error(f"{path}: the slot map does not fit this frame ({exc})") from None
    return image


def order_corners(points) -> np.ndarray:
    """tl, tr, br, bl by angle around the centroid, starting from the corner nearest the image
    origin; a slot's orientation in the frame does not matter (training rotates patches)."""
    pts = np.asarray(points, dtype=np.float64)
    center = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - center[1], pts[:, 0] - center[0])
    pts = pts[np.argsort(angles)]
    start = int(np.argmin(pts.sum(axis=1)))
    return np.roll(pts, -start, axis=0)


def perspective_coefficients(quad: np.ndarray, size: int) -> tuple[float, ...]:
    """The 8 coefficients Pillow's PERSPECTIVE transform needs: output square -> input quad."""
    square = [(0, 0), (size, 0), (size, size), (0, size)]
    rows, rhs = [], []
    for (u, v), (x, y) in zip(square, quad, strict=True):
        rows.append([u, v, 1, 0, 0, 0, -x * u, -x * v])
        rows.append([0, 0, 0, u, v, 1, -y * u, -y * v])
        rhs += [x, y]
    return tuple(np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64)))


def crop(frame: Image.Image, points, size: int = PATCH) -> Image.Image:
    quad = order_corners(points)
    return frame.transform((size, size), Image.Transform.PERSPECTIVE, perspective_coefficients(quad, size),
                           resample=Image.Resampling.BILINEAR)


def to_array(patches: list[Image.Image], size: int = PATCH) -> np.ndarray:
    """[N, 3, size, size] float32, normalised: the ONNX model's input."""
    batch = np.stack([np.asarray(p.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
                      for p in patches]) / 255.0
    batch = (batch - MEAN) / STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


def crop_all(frame: Image.Image, slot_map, size: int = PATCH) -> np.ndarray:
    frame = frame.convert("RGB")
    return to_array([crop(frame, s.points, size) for s in slot_map.slots], size)
