"""What the dashboard's status panel shows: the last pipeline run, the last drift decision and
the model versions (pending / approved / in production). One function behind the local route
and the read-API Lambda."""

from __future__ import annotations

from typing import Any

LAST_RUN_KEY = "drift/last_run.json"  # the last drift check: decision, why, report

_VERSION_FIELDS = ("val_intraday_mae",)
_EVALUATION_FIELDS = ("candidate_mae", "production_mae", "production_version", "window_start", "window_end")


def record_pipeline_run(objects, summary: dict[str, Any]) -> None:
    objects.put_json(LAST_RUN_KEY, summary)


def last_pipeline_run(objects) -> dict[str, Any] | None:
    return objects.get_json(LAST_RUN_KEY) if objects.exists(LAST_RUN_KEY) else None


def drift_summary(objects, last_run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The drift report of that pipeline run (None when the run made none)."""
    if not (last_run and last_run.get("drift_report") and objects.exists(last_run["drift_report"])):
        return None
    report = objects.get_json(last_run["drift_report"])
    drift = {k: report.get(k) for k in ("drift", "p_value", "threshold", "effect", "min_effect", "reason",
                                        "detector", "new_days")}
    drift["report"] = last_run["drift_report"]
    return drift


def system_status(registry, objects, group: str, dagster_url: str | None = None) -> dict[str, Any]:
    last_run = last_pipeline_run(objects)
    drift = drift_summary(objects, last_run)
    production = registry.production(group)
    versions = []
    for v in sorted(registry.list(group), key=lambda v: v.version, reverse=True)[:20]:
        versions.append({
            "version": v.version,
            "status": str(v.status),
            "created_at": v.created_at.isoformat(),
            "in_production": production is not None and v.version == production.version,
            "model_version": v.lineage.get("model_version"),
            "metrics": {k: v.metrics[k] for k in _VERSION_FIELDS if k in v.metrics},
            "evaluation": {k: v.evaluation[k] for k in _EVALUATION_FIELDS if k in v.evaluation}
            if v.evaluation else None,
            "promotion": v.promotion,
            "note": v.status_note,
        })
    counts: dict[str, int] = {}
    for v in versions:
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    return {
        "pipeline": last_run,
        "drift": drift,
        "models": {"group": group, "production": production.version if production else None, "counts": counts,
                   "versions": versions},
        "dagster_url": dagster_url,
    }
