"""The parkcast Dagster code location (loaded by workspace.yaml).

Resources follow the deployment: PARKCAST_DEPLOYMENT=local (default: SQLite, data folder) or
aws (DynamoDB, S3); everything else comes from the usual PARKCAST_* variables.
"""

from __future__ import annotations

import os

import dagster as dg

from parking_assets.export_assets import (
    daily_export_job,
    daily_export_schedule,
    daily_readings,
    exported_keys_unique,
    exported_row_counts_match_store,
    readings_are_fresh,
)
from parking_assets.resources import resources_for
from parking_core.config import Settings

defs = dg.Definitions(
    assets=[daily_readings],
    asset_checks=[exported_row_counts_match_store, exported_keys_unique, readings_are_fresh],
    jobs=[daily_export_job],
    schedules=[daily_export_schedule],
    resources=resources_for(os.environ.get("PARKCAST_DEPLOYMENT", "local"), Settings()),
)
