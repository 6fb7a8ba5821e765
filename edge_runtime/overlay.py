"""The overlay picture used to check a slot map: each slot outlined, free green, taken red."""

from __future__ import annotations

from PIL import Image, ImageDraw

FREE, TAKEN = (22, 163, 74), (220, 38, 38)


def draw_overlay(frame: Image.Image, slot_map, states, probabilities=None) -> Image.Image:
    out = frame.convert("RGB").copy()
    shade = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(shade)
    for i, (slot, taken) in enumerate(zip(slot_map.slots, states, strict=True)):
        color = TAKEN if taken else FREE
        draw.polygon(slot.points, fill=(*color, 70), outline=(*color, 255), width=2)
        x, y = min(p[0] for p in slot.points), min(p[1] for p in slot.points)
        label = slot.slot_id if probabilities is None else f"{slot.slot_id}:{probabilities[i]:.2f}"
        draw.text((x + 2, y + 1), label, fill=(255, 255, 255, 255))
    out.paste(shade, (0, 0), shade)
    taken = int(sum(bool(s) for s in states))
    ImageDraw.Draw(out).rectangle((0, 0, 260, 22), fill=(0, 0, 0))
    ImageDraw.Draw(out).text((6, 5), f"taken {taken} / {len(slot_map.slots)}", fill=(255, 255, 255))
    return out
