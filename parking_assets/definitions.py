"""The parkcast Dagster code location (loaded by workspace.yaml).

Resources follow the deployment: PARKCAST_DEPLOYMENT=local (default: SQLite, data folder) or
aws (DynamoDB, S3); everything else comes from the usual PARKCAST_* variables.
"""

from __future__ import annotations

import os

import dagster as dg

from parking_assets.edge_assets import slot_classifier
from parking_assets.export_assets import (
    daily_export_job,
    daily_export_schedule,
    daily_readings,
    exported_keys_unique,
    exported_row_counts_match_store,
    readings_are_fresh,
)
from parking_assets.pipeline_assets import (
    consolidated_dataset,
    drift_check,
    forecaster,
    model_evaluation,
    reference_dataset,
    registered_model,
)
from parking_assets.promotion import approved_versions_sensor, promotion_job
from parking_assets.resources import resources_for
from parking_core.config import Settings

pipeline_assets = [drift_check, consolidated_dataset, forecaster, registered_model, model_evaluation]
daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline", selection=dg.AssetSelection.assets(*pipeline_assets),
    description="Drift check; when needed: consolidate, train, register (PendingManualApproval), evaluate.",
)
daily_pipeline_schedule = dg.ScheduleDefinition(job=daily_pipeline_job, cron_schedule="0 2 * * *",
                                                execution_timezone="UTC")

defs = dg.Definitions(
    assets=[daily_readings, reference_dataset, *pipeline_assets, slot_classifier],
    asset_checks=[exported_row_counts_match_store, exported_keys_unique, readings_are_fresh],
    jobs=[daily_export_job, daily_pipeline_job, promotion_job],
    schedules=[daily_export_schedule, daily_pipeline_schedule],
    sensors=[approved_versions_sensor],
    resources=resources_for(os.environ.get("PARKCAST_DEPLOYMENT", "local"), Settings()),
)
