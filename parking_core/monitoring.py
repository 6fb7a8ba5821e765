"""Health checks the AWS deployment runs on a schedule (Lambda `system_monitor`): which car parks
have gone quiet, and whether the last pipeline run found drift. Plain functions over the store
and the object store; the Lambda turns their answers into CloudWatch metrics that alarms watch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from parking_core.contracts import Lot
from parking_core.status import drift_summary, last_pipeline_run


@dataclass(frozen=True)
class StaleLot:
    lot_id: str
    last_reading_at: datetime | None  # None: the car park never sent a reading

    def to_dict(self) -> dict[str, Any]:
        seen = self.last_reading_at.isoformat() if self.last_reading_at else None
        return {"lot_id": self.lot_id, "last_reading_at": seen}


def is_open(lot: Lot, at: datetime) -> bool:
    """Whether the car park reports at `at` (its local opening hours; none means always)."""
    if lot.opens_at is None or lot.closes_at is None:
        return True
    local = at.astimezone(ZoneInfo(lot.timezone)).time()
    opens, closes = time.fromisoformat(lot.opens_at), time.fromisoformat(lot.closes_at)
    if opens <= closes:
        return opens <= local < closes
    return local >= opens or local < closes  # open across midnight


def stale_lots(store, now: datetime, minutes: int) -> list[StaleLot]:
    """Car parks that have been open for the last `minutes` and sent no reading in that time.

    A car park closed now, or only just opened, is quiet rather than stale: its cameras may
    rightly have nothing to say yet."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if minutes < 1:
        raise ValueError(f"minutes must be at least 1, got {minutes}")
    since = now - timedelta(minutes=minutes)
    stale = []
    for lot in store.list_lots():
        if not (is_open(lot, now) and is_open(lot, since)):
            continue
        latest = store.latest_reading(lot.lot_id)
        if latest is None or latest.observed_at < since:
            stale.append(StaleLot(lot.lot_id, latest.observed_at if latest else None))
    return stale


def drift_detected(objects) -> bool | None:
    """Whether the last pipeline run found drift; None when it made no drift report."""
    summary = drift_summary(objects, last_pipeline_run(objects))
    return None if summary is None else bool(summary["drift"])
