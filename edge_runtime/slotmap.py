"""Slot maps: where each parking space is in the camera frame, as a 4-point polygon.

Three formats load into one SlotMap:
- PKLot XML (`<space id occupied><rotatedRect>...<contour><point x y/>...`; tag case varies
  across the dataset, so tags are matched case-insensitively; a space without a contour falls
  back to its rotated rectangle),
- the flattened CSV (frame, space_id, x1..y4 [, occupied]),
- our JSON: {"version": 1, "lot_id": "...", "frame_size": [w, h],
             "slots": [{"id": "A1", "points": [[x, y], [x, y], [x, y], [x, y]]}, ...]}.
Invalid maps fail at load with the file, the slot and what is wrong.
"""

from __future__ import annotations

import csv
import json
import math

# bandit B405/B314: the slot map is the operator's own local file, and Python's expat (>= 2.4.1)
# refuses entity-expansion bombs; defusedxml would be a dependency for no gain here.
import xml.etree.ElementTree as ET  # nosec B405
from dataclasses import dataclass, field
from pathlib import Path

MAX_ID = 64  # the API's limit on slot, lot and device ids (parking_core.contracts)


class SlotMapError(ValueError):
    pass


@dataclass(frozen=True)
class Slot:
    slot_id: str
    points: tuple[tuple[float, float], ...]  # 4 corners, in frame pixels
    occupied: bool | None = None  # a label, when the source carries one

    def area(self) -> float:
        pts = self.points
        return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True))) / 2


@dataclass
class SlotMap:
    slots: list[Slot]
    lot_id: str | None = None
    frame_size: tuple[int, int] | None = None
    source: str = ""
    labels: dict[str, bool] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"version": 1, "lot_id": self.lot_id, "frame_size": list(self.frame_size) if self.frame_size else None,
                "slots": [{"id": s.slot_id, "points": [list(p) for p in s.points]} for s in self.slots]}


def _tag(element: ET.Element) -> str:
    return element.tag.lower()


def _children(element: ET.Element, tag: str) -> list[ET.Element]:
    return [c for c in element if _tag(c) == tag]


def _rect_corners(cx: float, cy: float, w: float, h: float, angle_deg: float) -> list[tuple[float, float]]:
    a = math.radians(angle_deg)
    dx, dy = (math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))
    return [(cx + sx * w / 2 * dx[0] + sy * h / 2 * dy[0], cy + sx * w / 2 * dx[1] + sy * h / 2 * dy[1])
            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


def load_pklot_xml(path: Path) -> SlotMap:
    try:
        root = ET.parse(path).getroot()  # nosec B314
    except ET.ParseError as exc:
        raise SlotMapError(f"{path}: not valid XML ({exc})") from None
    slots = []
    for space in root.iter():
        if _tag(space) != "space":
            continue
        sid = space.get("id")
        if not sid:
            raise SlotMapError(f"{path}: a <space> without an id")
        try:
            points = _xml_points(space, sid, path)
        except (TypeError, ValueError):  # a missing or non-numeric attribute
            raise SlotMapError(f"{path}: space {sid}: coordinates must be numbers") from None
        occupied = space.get("occupied")
        slots.append(Slot(sid, tuple(points), None if occupied in (None, "") else occupied == "1"))
    return SlotMap(slots, lot_id=root.get("id"), source=str(path))


def _xml_points(space, sid: str, path: Path) -> list[tuple[float, float]]:
    """A <space>'s corners: its contour, else the corners of its rotatedRect."""
    contour = _children(space, "contour")
    points = [(float(p.get("x")), float(p.get("y"))) for p in _children(contour[0], "point")] if contour else []
    if points:
        return points
    rect = _children(space, "rotatedrect")
    if not rect:
        raise SlotMapError(f"{path}: space {sid} has neither a contour nor a rotatedRect")
    center, size, angle = (_children(rect[0], t) for t in ("center", "size", "angle"))
    if not (center and size and angle):
        raise SlotMapError(f"{path}: space {sid}: rotatedRect needs center, size and angle")
    return _rect_corners(float(center[0].get("x")), float(center[0].get("y")), float(size[0].get("w")),
                         float(size[0].get("h")), float(angle[0].get("d")))


def load_slots_csv(path: Path, frame: str | None = None) -> SlotMap:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise SlotMapError(f"{path}: no rows")
    needed = {"space_id", *(f"{a}{i}" for i in range(1, 5) for a in "xy")}
    missing = needed - set(rows[0])
    if missing:
        raise SlotMapError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    if "frame" in rows[0]:
        frames = sorted({r["frame"] for r in rows})
        frame = frame or frames[0]
        rows = [r for r in rows if r["frame"] == frame or Path(r["frame"]).stem == Path(frame).stem]
        if not rows:
            raise SlotMapError(f"{path}: no rows for frame {frame!r} (frames: {', '.join(frames)})")
    slots = []
    for r in rows:
        try:
            points = tuple((float(r[f"x{i}"]), float(r[f"y{i}"])) for i in range(1, 5))
        except (TypeError, ValueError):
            raise SlotMapError(f"{path}: space {r['space_id']}: coordinates must be numbers") from None
        occupied = (r.get("occupied") or "").strip()
        slots.append(Slot(r["space_id"], points, None if occupied == "" else occupied == "1"))
    return SlotMap(slots, lot_id=rows[0].get("lot") or None, source=str(path))


def load_json(path: Path) -> SlotMap:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise SlotMapError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("slots"), list):
        raise SlotMapError(f'{path}: expected {{"version": 1, "slots": [...]}}')
    slots = []
    for i, s in enumerate(data["slots"]):
        if not isinstance(s, dict) or "id" not in s or "points" not in s:
            raise SlotMapError(f"{path}: slots[{i}] needs an id and points")
        try:
            points = tuple((float(x), float(y)) for x, y in s["points"])
        except (TypeError, ValueError):
            raise SlotMapError(f"{path}: slot {s['id']}: points must be [[x, y], ...]") from None
        slots.append(Slot(str(s["id"]), points))
    size = data.get("frame_size")
    return SlotMap(slots, lot_id=data.get("lot_id"), frame_size=tuple(size) if size else None, source=str(path))


def load_slot_map(path: Path | str, frame: str | None = None) -> SlotMap:
    """By suffix: .xml (PKLot), .csv (flattened PKLot), .json (ours); then validated."""
    path = Path(path)
    if not path.exists():
        raise SlotMapError(f"{path}: no such slot map")
    loaders = {".xml": load_pklot_xml, ".csv": lambda p: load_slots_csv(p, frame), ".json": load_json}
    if path.suffix.lower() not in loaders:
        raise SlotMapError(f"{path}: unknown slot map format (use .xml, .csv or .json)")
    slot_map = loaders[path.suffix.lower()](path)
    validate(slot_map)
    return slot_map


def validate(slot_map: SlotMap, frame_size: tuple[int, int] | None = None) -> None:
    where = slot_map.source or "slot map"
    if not slot_map.slots:
        raise SlotMapError(f"{where}: no slots")
    seen = set()
    size = frame_size or slot_map.frame_size
    for s in slot_map.slots:
        if not 1 <= len(s.slot_id) <= MAX_ID:  # the API refuses such a reading: every one would be lost
            raise SlotMapError(f"{where}: slot id {s.slot_id!r} must be 1-{MAX_ID} characters")
        if s.slot_id in seen:
            raise SlotMapError(f"{where}: slot id {s.slot_id} appears twice")
        seen.add(s.slot_id)
        if len(s.points) != 4:
            raise SlotMapError(f"{where}: slot {s.slot_id} has {len(s.points)} points; a slot is 4 corners")
        if s.area() < 16:
            raise SlotMapError(f"{where}: slot {s.slot_id} has an area of {s.area():.0f} px (degenerate polygon)")
        if size and any(not (-1 <= x <= size[0] + 1 and -1 <= y <= size[1] + 1) for x, y in s.points):
            raise SlotMapError(f"{where}: slot {s.slot_id} lies outside the {size[0]}x{size[1]} frame")
