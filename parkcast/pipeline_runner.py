"""Run the Dagster pipeline in-process for the CLI and the demo (runs land in the Dagster
instance under <data dir>/dagster, so the UI shows them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from parking_core.config import Settings
from parking_core.export import export_day, exported_days, readings_frame


@dataclass
class PipelineOutcome:
    success: bool
    exported: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    decision: str = ""

    def summary(self) -> str:
        return (
            f"exported {len(self.exported)} new day(s); {self.decision}\n"
            f"materialized: {', '.join(self.materialized) or 'nothing'}; {'success' if self.success else 'FAILED'}"
        )


def dagster_instance(settings: Settings):
    import dagster as dg

    home = settings.data_dir.resolve() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


def export_missing_days(settings: Settings) -> list[str]:
    """Export every UTC day from the first reading to yesterday that is not exported yet."""
    from parking_assets.resources import ParkcastResource

    parkcast = ParkcastResource(data_dir=str(settings.data_dir.resolve()), object_store_url=settings.object_store_url)
    store, objects = parkcast.store(), parkcast.objects()
    firsts = [r[0].observed_at for lot in store.list_lots()
              if (r := store.query_readings(lot.lot_id, datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC), 1))]
    if not firsts:
        return []
    done = set(exported_days(objects))
    day, last = min(firsts).date(), datetime.now(UTC).date() - timedelta(days=1)
    out = []
    while day <= last:
        if day not in done and readings_frame(store, day).height:
            export_day(store, objects, day)
            out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def run_pipeline(settings: Settings, force_retrain: bool = False, **overrides) -> PipelineOutcome:
    """overrides: PipelineConfig fields (architectures, max_epochs, limit_train_batches, ...)."""
    import dagster as dg

    from parking_assets.definitions import pipeline_assets
    from parking_assets.resources import resources_for

    exported = export_missing_days(settings)
    resources = resources_for("local", settings)
    # A new resource, not model_copy: Dagster rebuilds resources from their constructor config.
    base = resources["pipeline"]
    fields = {name: getattr(base, name) for name in type(base).model_fields}
    resources["pipeline"] = type(base)(**{**fields, **overrides, "force_retrain": force_retrain})
    # The forecaster's metrics check is one of its check_specs: it runs in the same run, and the
    # Dagster UI shows it beside the materializations.
    result = dg.materialize(pipeline_assets, resources=resources, instance=dagster_instance(settings),
                            raise_on_error=False)
    events = result.get_asset_materialization_events()
    decision = next(
        (e.materialization.metadata["decision"].value for e in events if e.asset_key.path[-1] == "drift_report"), ""
    )
    return PipelineOutcome(result.success, exported, [e.asset_key.path[-1] for e in events], decision)
