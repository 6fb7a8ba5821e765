"""Schemathesis hooks for tests/test_fuzz_contract.py (loaded through SCHEMATHESIS_HOOKS).

Positive cases only: they bend generated, schema-valid data to the rules a JSON Schema cannot
state and the OpenAPI description lists (occupied at most 10% over capacity, slots agreeing
with occupied, observed_at not in the future, start before end within 62 days), and point
readings at the seeded device so valid data reaches the store. Schemathesis re-checks a
changed case against the schema, so no negative case is made valid here or the other way."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import schemathesis

LOT, DEVICE = os.environ.get("FUZZ_LOT", "LOT-A"), os.environ.get("FUZZ_DEVICE", "cam-a")
PAST = "2020-01-01T00:00:00Z"


def _past(text: object) -> object:
    if not isinstance(text, str):
        return text
    try:
        when = datetime.fromisoformat(text.upper())
    except ValueError:
        return PAST
    return text if when.tzinfo and datetime(2000, 1, 1, tzinfo=UTC) < when < datetime.now(UTC) else PAST


def _number(value: object) -> int | None:
    """An integer as JSON Schema sees one (258.0 included), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def _fix_reading(item: object) -> object:
    if not isinstance(item, dict):
        return item
    item = {**item, "lot_id": LOT, "device_id": DEVICE, "observed_at": _past(item.get("observed_at"))}
    capacity, occupied, slots = _number(item.get("capacity")), _number(item.get("occupied")), item.get("slots")
    if capacity is not None and occupied is not None:
        item["occupied"] = min(occupied, int(capacity * 1.1))
    if isinstance(slots, list):
        ids = [s.get("slot_id") for s in slots if isinstance(s, dict)]
        taken = sum(1 for s in slots if isinstance(s, dict) and s.get("occupied") is True)
        if len(set(ids)) == len(slots) and capacity is not None and taken <= int(capacity * 1.1):
            item["occupied"] = taken
        else:
            item["slots"] = None
    return item


@schemathesis.hook
def map_case(context, case):
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    path, method = case.operation.path, case.method.upper()
    if path == "/v1/readings" and method == "POST":
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("readings"), list):
            case.body = {**body, "readings": [_fix_reading(r) for r in body["readings"]]}
        elif isinstance(body, list):
            case.body = [_fix_reading(r) for r in body]
        else:
            case.body = _fix_reading(body)
    elif path.endswith("/readings") and method == "GET" and case.query:
        start = case.query.get("start")
        if isinstance(start, str):
            case.query["start"] = start = _past(start)
        if isinstance(start, str):  # end defaults to now: keep the range within 62 days
            s = datetime.fromisoformat(start.upper())
            case.query["end"] = (s + timedelta(days=1)).isoformat()
    return case
