"""EventBridge schedule (every few minutes) -> the health metrics CloudWatch alarms watch:
`StaleLots` (open car parks silent for PARKCAST_STALE_LOT_MINUTES) and `DriftDetected` (the
last pipeline run's drift decision). The lots' names go to the log, not into metric dimensions:
one metric per car park would cost more than the check itself at 1,000 car parks."""

from datetime import UTC, datetime

from parking_core.aws.http import logger, metrics
from parking_core.aws.runtime import runtime
from parking_core.monitoring import drift_detected, stale_lots


def check_time(event: dict) -> datetime:
    # A scheduled event carries its own time, so a late or retried run judges the same moment.
    if event.get("time"):
        return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    return datetime.now(UTC)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    rt = runtime()
    now = check_time(event)
    stale = [s.to_dict() for s in stale_lots(rt.store, now, rt.settings.stale_lot_minutes)]
    metrics.add_metric(name="StaleLots", unit="Count", value=len(stale))
    drift = drift_detected(rt.objects)
    if drift is not None:
        metrics.add_metric(name="DriftDetected", unit="Count", value=int(drift))
    if stale:
        logger.warning("car parks silent", extra={"stale": stale, "minutes": rt.settings.stale_lot_minutes})
    return {"at": now.isoformat(), "stale": stale, "drift": drift}
