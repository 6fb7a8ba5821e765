"""The daily pipeline's steps as plain functions. The Dagster assets (parking_assets) and the
SageMaker step scripts (sagemaker_adapter.steps) are thin adapters over these, so both
deployments take the same decisions on the same data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parking_core import dataset
from parking_core.mlops import decide_retrain, evaluate_registered_version
from parking_core.pipeline_values import (
    DatasetSnapshot,
    DriftAssessment,
    Evaluation,
    ModelPackageRef,
    RegisteredVersion,
)
from parking_core.registry import ApprovalStatus, ModelRegistry
from parking_core.status import record_pipeline_run


@dataclass
class DriftCheck:
    assessment: DriftAssessment
    report: Any = None  # the detector's DriftReport (plots) when a test ran

    @property
    def decision(self):
        return self.assessment.decision


def check_drift(objects, registry: ModelRegistry, group: str, timezone: str, step_minutes: int, *,
                reference_days: int = 21, p_value: float = 0.05, min_effect: float = 0.05, force: bool = False,
                run_id: str = "") -> DriftCheck:
    """Drift test of the new exported days against the consolidated dataset, then the retrain
    condition; writes drift/<day>/report.json + .png and pipeline/last_run.json."""
    from parking_core.drift import MIN_NEW_DAYS, detect_drift
    from parking_core.forecasting.grid import readings_to_cube

    new_days = dataset.new_days(objects)
    reference = dataset.load(objects)
    production = registry.production(group)
    # Without production, a version still waiting for a person's decision is enough.
    waiting = [v.version for v in registry.list(group) if v.status == ApprovalStatus.PENDING]
    report, report_key = None, None
    new_frame = dataset.read_days(objects, new_days) if new_days else None
    has_readings = new_frame is not None and not new_frame.is_empty()
    if not new_days:
        finding = "no new exported days since the last consolidation"
    elif reference.is_empty():
        finding = "no consolidated dataset yet"
    elif not has_readings:
        finding = "the new days hold no readings"
    else:
        ref_cube = readings_to_cube(dataset.to_pandas(reference), timezone, step_minutes).day_slice(-reference_days)
        new_cube = readings_to_cube(dataset.to_pandas(new_frame), timezone, step_minutes, spec=ref_cube.spec)
        report = detect_drift(ref_cube, new_cube, p_val=p_value, min_effect=min_effect)
        report_key = f"drift/{new_days[-1].isoformat()}/report.json"
        objects.put_json(report_key, report.to_dict())
        objects.put_bytes(report_key.replace(".json", ".png"), report.plot_png())
        finding = "drift" if report.drift else ("no drift" if report.n_new >= MIN_NEW_DAYS else report.reason)
    decision = decide_retrain(
        has_new_days=has_readings,
        has_dataset=not reference.is_empty(),
        drift=report.drift if report else None,
        finding=finding,
        production_version=production.version if production else None,
        waiting_version=waiting[-1] if waiting else None,
        force=force,
    )
    assessment = DriftAssessment(
        run_id=run_id, decision=decision, new_days=new_days, report_key=report_key,
        **({"drift": report.drift, "p_value": report.p_value, "effect": report.effect, "reason": report.reason}
           if report is not None else {}))
    record_pipeline_run(objects, {"run_id": run_id, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "retrain": decision.retrain, "decision": decision.summary,
                                  "reasons": decision.reasons, "new_days": [d.isoformat() for d in new_days],
                                  "drift_report": report_key, "drift": assessment.drift,
                                  "p_value": assessment.p_value, "effect": assessment.effect,
                                  "reason": assessment.reason})
    return DriftCheck(assessment, report)


def consolidate(objects, run_id: str) -> DatasetSnapshot:
    """Merge every new exported day into the dataset (deduplicated, schema enforced)."""
    days = dataset.new_days(objects)
    info = dataset.consolidate(objects, days)
    return DatasetSnapshot(run_id=run_id, key=dataset.DATASET_KEY, rows=info["rows"], days=info["days"],
                           new_days=len(days), data_hash=info["data_hash"])


def train(objects, timezone: str, step_minutes: int, out_dir: Path, config, progress: bool = False):
    """Train on the consolidated dataset; the package (model.onnx, metrics.json, ...) lands in out_dir."""
    from parking_core.forecasting.workflows import train_package

    frame = dataset.to_pandas(dataset.load(objects))
    package, _ = train_package(frame, timezone, step_minutes, Path(out_dir), config, progress=progress)
    return package


def package_ref(package, model_uri: str, run_id: str) -> ModelPackageRef:
    """What the training step hands the registration: where the package is and how it scored."""
    metrics = package.metrics
    return ModelPackageRef(
        run_id=run_id, model_uri=model_uri, model_version=package.version, data_hash=package.manifest["data_hash"],
        selected=metrics["selected"], val_intraday_mae=metrics["candidates"][metrics["selected"]]["val_intraday_mae"],
        val_weekly_level_mae=metrics["validation_baselines_mae"]["weekly_level"],
        onnx_max_abs_diff=metrics["onnx_max_abs_diff"])


def register(registry: ModelRegistry, objects, group: str, model: ModelPackageRef, run_id: str,
             code_version: str) -> RegisteredVersion:
    """Register exactly the package this run trained, as PendingManualApproval."""
    key = objects.key_of(model.model_uri)
    metrics, lineage = registration(objects.get_json(f"{key}/metrics.json"), objects.get_json(f"{key}/manifest.json"),
                                    run_id, code_version)
    version = registry.register(group, model.model_uri, metrics, lineage)
    return RegisteredVersion(group=group, version=version.version, status=str(version.status),
                             model_uri=version.model_uri, lineage=version.lineage)


def evaluate(registry: ModelRegistry, objects, store, registered: RegisteredVersion, window_days: int) -> Evaluation:
    """The candidate this run registered against production; the report is attached to it."""
    report = evaluate_registered_version(registry, objects, store, registered.group, registered.version, window_days)
    plain = {k: v.item() if hasattr(v, "item") else v for k, v in report.items()}  # numpy scalars -> JSON
    return Evaluation(group=registered.group, version=registered.version, report=plain)


def registration(package_metrics: dict, manifest: dict, run_id: str, code_version: str) -> tuple[dict, dict]:
    """(metrics, lineage) recorded on a new registry version."""
    selected = package_metrics["selected"]
    metrics = {"val_intraday_mae": package_metrics["candidates"][selected]["val_intraday_mae"],
               "architecture": selected}
    if "beats_weekly_level" in package_metrics:  # the promotion floor's evidence (rolling-origin folds)
        metrics["beats_weekly_level"] = package_metrics["beats_weekly_level"]
    lineage = {"data_hash": manifest["data_hash"], "code_version": code_version, "run_id": run_id,
               "model_version": manifest["model_version"]}
    return metrics, lineage
