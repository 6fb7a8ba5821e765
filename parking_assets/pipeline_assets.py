"""The daily MLOps graph: drift_report -> [retrain_decision] -> consolidated_dataset ->
forecaster -> registered_model -> model_evaluation. Each asset is a thin adapter over
parking_core; its `sagemaker_step` metadata names the SageMaker step it compiles to."""

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np

from parking_assets.export_assets import daily_readings
from parking_assets.resources import ParkcastResource, PipelineConfig, RegistryResource
from parking_core import dataset
from parking_core.drift import MIN_NEW_DAYS, detect_drift
from parking_core.forecasting.grid import Cube, readings_to_cube
from parking_core.forecasting.models_dir import common_grid
from parking_core.forecasting.package import code_version, upload_package
from parking_core.mlops import decide_retrain, evaluate_registered_version
from parking_core.registry import ApprovalStatus
from parking_core.status import record_pipeline_run

GROUP = "mlops"


def _cube(frame, parkcast: ParkcastResource, spec=None) -> Cube:
    timezone, step = common_grid(parkcast.store())
    return readings_to_cube(dataset.to_pandas(frame), timezone, step, spec=spec)


@dg.multi_asset(
    outs={
        "drift_report": dg.AssetOut(
            group_name=GROUP,
            description="Seasonal drift test of the new days against the reference dataset.",
            metadata={"sagemaker_step": "processing:drift_detector.py"},
        ),
        "retrain_decision": dg.AssetOut(
            group_name=GROUP,
            is_required=False,
            description="Materialized only when the model must be retrained; the run says why.",
            metadata={"sagemaker_step": "condition:RetrainNeeded"},
        ),
    },
    deps=[daily_readings],
)
def drift_check(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                registry: RegistryResource):
    objects = parkcast.objects()
    new_days = dataset.new_days(objects)
    reference = dataset.load(objects)
    reg = registry.registry()
    production = reg.production(pipeline.model_group)
    # Without production, a version still waiting for a person's decision is enough.
    waiting = [v.version for v in reg.list(pipeline.model_group) if v.status == ApprovalStatus.PENDING]
    report = None
    if not new_days:
        finding = "no new exported days since the last consolidation"
    elif reference.is_empty():
        finding = "no consolidated dataset yet"
    else:
        ref_cube = _cube(reference, parkcast).day_slice(-pipeline.reference_days)
        new_frame = dataset.read_days(objects, new_days)
        if new_frame.is_empty():
            yield dg.MaterializeResult(asset_key="drift_report", metadata={
                "decision": "no retrain: the new days hold no readings", "new_days": [d.isoformat() for d in new_days]})
            return
        new_cube = _cube(new_frame, parkcast, spec=ref_cube.spec)
        report = detect_drift(ref_cube, new_cube, p_val=pipeline.drift_p_value, min_effect=pipeline.drift_min_effect)
        key = f"drift/{new_days[-1].isoformat()}"
        objects.put_json(f"{key}/report.json", report.to_dict())
        objects.put_bytes(f"{key}/report.png", report.plot_png())
        finding = "drift" if report.drift else ("no drift" if report.n_new >= MIN_NEW_DAYS else report.reason)
    decision = decide_retrain(
        has_new_days=bool(new_days),
        has_dataset=not reference.is_empty(),
        drift=report.drift if report else None,
        finding=finding,
        production_version=production.version if production else None,
        waiting_version=waiting[-1] if waiting else None,
        force=pipeline.force_retrain,
    )
    record_pipeline_run(objects, {
        "run_id": context.run_id,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "decision": decision.summary,
        "retrain": decision.retrain,
        "new_days": [d.isoformat() for d in new_days],
        "drift_report": f"drift/{new_days[-1].isoformat()}/report.json" if report is not None else None,
    })
    context.log.info(decision.summary + "; consolidated_dataset, forecaster and registered_model "
                     + ("run" if decision.retrain else "are skipped"))
    metadata = {
        "decision": decision.summary,
        "new_days": [d.isoformat() for d in new_days],
    }
    if report is not None:
        metadata.update({
            "detector": report.detector,
            "p_value": report.p_value,
            "threshold": report.threshold,
            "statistic": report.statistic,
            "effect": report.effect,
            "reason": report.reason,
            "report": dg.MetadataValue.md(report.plot_markdown()),
        })
    yield dg.MaterializeResult(asset_key="drift_report", metadata=metadata)
    if decision.retrain:
        yield dg.MaterializeResult(asset_key="retrain_decision", metadata={"reasons": ", ".join(decision.reasons)})


@dg.asset(group_name=GROUP, deps=["retrain_decision"], metadata={"sagemaker_step": "processing:consolidate_data.py"})
def consolidated_dataset(context: dg.AssetExecutionContext, parkcast: ParkcastResource) -> dg.MaterializeResult:
    objects = parkcast.objects()
    days = dataset.new_days(objects)
    info = dataset.consolidate(objects, days)
    context.log.info(f"merged {len(days)} new days: {info['rows']} rows over {len(info['days'])} days")
    return dg.MaterializeResult(metadata={"rows": info["rows"], "days": len(info["days"]),
                                          "data_hash": info["data_hash"], "new_days": len(days)})


@dg.asset(group_name=GROUP, deps=[consolidated_dataset], metadata={"sagemaker_step": "training:train_pipeline.py"})
def forecaster(context: dg.AssetExecutionContext, parkcast: ParkcastResource,
               pipeline: PipelineConfig) -> dg.MaterializeResult:
    from parking_core.forecasting.workflows import train_package

    objects = parkcast.objects()
    frame = dataset.to_pandas(dataset.load(objects))
    timezone, step = common_grid(parkcast.store())
    with tempfile.TemporaryDirectory() as tmp:
        package, _ = train_package(frame, timezone, step, Path(tmp) / "package", pipeline.train_config(),
                                   progress=False)
        uri = upload_package(objects, package.path, f"models/{context.run_id}")
    metrics = package.metrics
    context.log.info(f"trained {package.version} ({metrics['selected']}) -> {uri}")
    return dg.MaterializeResult(metadata={
        "model_version": package.version,
        "model_uri": uri,
        "selected": metrics["selected"],
        "val_intraday_mae": metrics["candidates"][metrics["selected"]]["val_intraday_mae"],
        "val_weekly_level_mae": metrics["validation_baselines_mae"]["weekly_level"],
        "onnx_max_abs_diff": metrics["onnx_max_abs_diff"],
        "data_hash": package.manifest["data_hash"],
    })


@dg.asset_check(asset=forecaster, description="Validation MAE is a sane rate error and the ONNX graph matches torch.")
def forecaster_metrics_sane(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    m = _latest_metadata(context, "forecaster")
    mae, onnx_diff = m["val_intraday_mae"], m["onnx_max_abs_diff"]
    problems = []
    if not 0.0 < mae < 0.5:
        problems.append(f"validation MAE {mae} outside (0, 0.5)")
    if not onnx_diff <= 1e-4:
        problems.append(f"ONNX differs from torch by {onnx_diff}")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"val_intraday_mae": mae, "val_weekly_level_mae": m["val_weekly_level_mae"],
                  "onnx_max_abs_diff": onnx_diff, "problems": "; ".join(problems) or "none"},
    )


def _latest_metadata(context, key: str) -> dict:
    event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None or event.asset_materialization is None:
        raise RuntimeError(f"{key} has not been materialized")
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.asset(group_name=GROUP, deps=[forecaster], metadata={"sagemaker_step": "register:RegisterModel"})
def registered_model(context: dg.AssetExecutionContext, pipeline: PipelineConfig,
                     registry: RegistryResource) -> dg.MaterializeResult:
    trained = _latest_metadata(context, "forecaster")
    version = registry.registry().register(
        pipeline.model_group,
        trained["model_uri"],
        {"val_intraday_mae": trained["val_intraday_mae"], "architecture": trained["selected"]},
        {"data_hash": trained["data_hash"], "code_version": code_version(), "run_id": context.run_id,
         "model_version": trained["model_version"]},
    )
    context.log.info(f"registered version {version.version} as {version.status}")
    return dg.MaterializeResult(metadata={"version": version.version, "status": str(version.status),
                                          "model_uri": version.model_uri})


@dg.asset(group_name=GROUP, deps=[registered_model], metadata={"sagemaker_step": "lambda:evaluate-promote-trigger"})
def model_evaluation(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                     registry: RegistryResource) -> dg.MaterializeResult:
    version = int(_latest_metadata(context, "registered_model")["version"])
    report = evaluate_registered_version(registry.registry(), parkcast.objects(), parkcast.store(),
                                         pipeline.model_group, version, pipeline.evaluation_days)
    context.log.info(f"evaluation attached to version {version}: {report}")
    return dg.MaterializeResult(metadata={k: v for k, v in report.items() if not isinstance(v, float | np.floating)
                                          or np.isfinite(v)})
