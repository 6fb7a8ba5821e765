"""daily_readings: the day's readings and forecasts from the store to parquet in the object store."""


from datetime import UTC, date, datetime

import dagster as dg

from parking_assets.resources import ParkcastResource
from parking_assets.sagemaker_meta import object_prefix, sagemaker_step
from parking_core.export import export_day, exported_days, partition_key, read_partition, readings_frame

daily_partitions = dg.DailyPartitionsDefinition(start_date="2016-10-04", timezone="UTC")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="ingestion",
    kinds={"parquet"},
    metadata={**sagemaker_step("lambda", function="daily-export-to-s3"), **object_prefix("readings")},
    description="The UTC day's readings and forecasts exported from the store (idempotent).",
)
def daily_readings(context: dg.AssetExecutionContext, parkcast: ParkcastResource) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    objects = parkcast.objects()
    result = export_day(parkcast.store(), objects, day)
    context.log.info(
        f"{day}: {result.readings} readings, {result.forecasts} forecast steps; "
        f"{'rewrote ' + ', '.join(result.written) if result.written else 'unchanged'}"
    )
    return dg.MaterializeResult(
        metadata={
            "readings": result.readings,
            "forecast_steps": result.forecasts,
            "rewritten": len(result.written),
            "uri": dg.MetadataValue.url(objects.uri(partition_key("readings", day))),
        }
    )


@dg.asset_check(asset=daily_readings, description="Every exported day holds as many readings as the store.")
def exported_row_counts_match_store(parkcast: ParkcastResource) -> dg.AssetCheckResult:
    objects, store = parkcast.objects(), parkcast.store()
    mismatches = {}
    days = exported_days(objects)
    for day in days:
        exported = objects.get_json(partition_key("readings", day, "_manifest.json"))["rows"]
        stored = readings_frame(store, day).height
        if exported != stored:
            mismatches[day.isoformat()] = {"exported": exported, "store": stored}
    return dg.AssetCheckResult(
        passed=not mismatches, metadata={"days_checked": len(days), "mismatches": dg.MetadataValue.json(mismatches)}
    )


@dg.asset_check(asset=daily_readings, description="No (lot_id, device_id, observed_at) twice in any partition.")
def exported_keys_unique(parkcast: ParkcastResource) -> dg.AssetCheckResult:
    objects = parkcast.objects()
    duplicated = {}
    for day in exported_days(objects):
        frame = read_partition(objects, "readings", day)
        n = frame.height - frame.unique(["lot_id", "device_id", "observed_at"]).height
        if n:
            duplicated[day.isoformat()] = n
    return dg.AssetCheckResult(passed=not duplicated, metadata={"duplicates": dg.MetadataValue.json(duplicated)})


@dg.asset_check(asset=daily_readings, description="The newest reading in the store is less than a day old.")
def readings_are_fresh(parkcast: ParkcastResource) -> dg.AssetCheckResult:
    store = parkcast.store()
    latest = [r.observed_at for lot in store.list_lots() if (r := store.latest_reading(lot.lot_id))]
    newest = max(latest) if latest else None
    age_h = None if newest is None else (datetime.now(UTC) - newest).total_seconds() / 3600
    return dg.AssetCheckResult(
        passed=age_h is not None and age_h < 24,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"newest_reading": str(newest), "age_hours": round(age_h, 1) if age_h is not None else -1},
    )


daily_export_job = dg.define_asset_job("daily_export", selection=[daily_readings], partitions_def=daily_partitions)
daily_export_schedule = dg.build_schedule_from_partitioned_job(daily_export_job, hour_of_day=0, minute_of_hour=30)
