"""EventBridge schedule -> export the previous UTC day's readings and forecasts from DynamoDB to
S3 as parquet, in the partition layout the pipeline reads. Paginated queries, count-verified,
idempotent (a rerun rewrites nothing). An event may name the day: {"day": "2016-11-21"}."""

from datetime import UTC, date, datetime, timedelta

from parking_core.aws.http import logger, metrics
from parking_core.aws.runtime import runtime
from parking_core.export import export_day


def day_to_export(event: dict) -> date:
    if event.get("day"):
        day = date.fromisoformat(event["day"])
        today = datetime.now(UTC).date()
        if day >= today:  # a partial day would be merged as complete and its later readings skipped
            raise ValueError(f"day {day} is not over yet (UTC today is {today}): export only finished days")
        return day
    # A scheduled event carries its own time: a retried or late invocation exports the same day.
    fired = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    return fired.date() - timedelta(days=1)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    day = day_to_export(event)
    rt = runtime()
    result = export_day(rt.store, rt.objects, day)
    summary = result.to_dict()
    metrics.add_metric(name="ExportedReadings", unit="Count", value=summary["readings"])
    logger.info("day exported", extra=summary)
    return summary
