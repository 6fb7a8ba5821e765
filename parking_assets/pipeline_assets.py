"""The daily MLOps graph: drift_report -> [retrain_decision] -> consolidated_dataset ->
forecaster -> registered_model -> model_evaluation. Each asset is a thin adapter over
parking_core.pipeline_steps; its `sagemaker_step` metadata names the SageMaker step it compiles to."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from parking_assets.export_assets import daily_readings
from parking_assets.resources import ParkcastResource, PipelineConfig, RegistryResource
from parking_assets.sagemaker_meta import processing, sagemaker_step, training
from parking_core import pipeline_steps
from parking_core.forecasting.models_dir import common_grid
from parking_core.forecasting.package import code_version, upload_package
from parking_core.mlops import evaluate_registered_version
from parking_core.registry import ApprovalStatus

GROUP = "mlops"


@dg.multi_asset(
    outs={
        "drift_report": dg.AssetOut(
            group_name=GROUP,
            description="Seasonal drift test of the new days against the reference dataset.",
            metadata=processing("CheckDataDrift", "drift_detector.py", reads=["readings", "dataset"],
                                writes=["drift", "pipeline"], property_file="pipeline/decision.json",
                                params=["Timezone", "GridStepMinutes", "DriftPValue", "DriftMinEffect",
                                        "ReferenceDays", "ForceRetrain"]),
        ),
        "retrain_decision": dg.AssetOut(
            group_name=GROUP,
            is_required=False,
            description="Materialized only when the model must be retrained; the run says why.",
            metadata=sagemaker_step("condition", "RetrainNeeded", source="drift_report", json_path="retrain"),
        ),
    },
    deps=[daily_readings],
)
def drift_check(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                registry: RegistryResource):
    timezone, step = common_grid(parkcast.store())
    check = pipeline_steps.check_drift(
        parkcast.objects(), registry.registry(), pipeline.model_group, timezone, step,
        reference_days=pipeline.reference_days, p_value=pipeline.drift_p_value, min_effect=pipeline.drift_min_effect,
        force=pipeline.force_retrain, run_id=context.run_id,
    )
    decision, report = check.decision, check.report
    context.log.info(decision.summary + "; consolidated_dataset, forecaster and registered_model "
                     + ("run" if decision.retrain else "are skipped"))
    metadata = {"decision": decision.summary, "new_days": [d.isoformat() for d in check.new_days]}
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


@dg.asset(group_name=GROUP, deps=["retrain_decision"],
          metadata=processing("ConsolidateData", "consolidate_data.py", reads=["readings", "dataset"],
                              writes=["dataset"]))
def consolidated_dataset(context: dg.AssetExecutionContext, parkcast: ParkcastResource) -> dg.MaterializeResult:
    info = pipeline_steps.consolidate(parkcast.objects())
    context.log.info(f"merged {info['new_days']} new days: {info['rows']} rows over {len(info['days'])} days")
    return dg.MaterializeResult(metadata={"rows": info["rows"], "days": len(info["days"]),
                                          "data_hash": info["data_hash"], "new_days": info["new_days"]})


@dg.asset(group_name=GROUP, deps=[consolidated_dataset], metadata=training("TrainParkingModel", "train_pipeline.py"))
def forecaster(context: dg.AssetExecutionContext, parkcast: ParkcastResource,
               pipeline: PipelineConfig) -> dg.MaterializeResult:
    objects = parkcast.objects()
    timezone, step = common_grid(parkcast.store())
    with tempfile.TemporaryDirectory() as tmp:
        package = pipeline_steps.train(objects, timezone, step, Path(tmp) / "package", pipeline.train_config())
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


@dg.asset(group_name=GROUP, deps=[forecaster],
          metadata=sagemaker_step("register", "RegisterModel", approval_status=ApprovalStatus.PENDING.value))
def registered_model(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                     registry: RegistryResource) -> dg.MaterializeResult:
    objects = parkcast.objects()
    model_uri = _latest_metadata(context, "forecaster")["model_uri"]
    key = objects.key_of(model_uri)
    metrics, lineage = pipeline_steps.registration(objects.get_json(f"{key}/metrics.json"),
                                                   objects.get_json(f"{key}/manifest.json"), context.run_id,
                                                   code_version())
    version = registry.registry().register(pipeline.model_group, model_uri, metrics, lineage)
    context.log.info(f"registered version {version.version} as {version.status}")
    return dg.MaterializeResult(metadata={"version": version.version, "status": str(version.status),
                                          "model_uri": version.model_uri})


@dg.asset(group_name=GROUP, deps=[registered_model],
          metadata=sagemaker_step("lambda", function="evaluate-promote-trigger"))
def model_evaluation(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                     registry: RegistryResource) -> dg.MaterializeResult:
    version = int(_latest_metadata(context, "registered_model")["version"])
    report = evaluate_registered_version(registry.registry(), parkcast.objects(), parkcast.store(),
                                         pipeline.model_group, version, pipeline.evaluation_days)
    context.log.info(f"evaluation attached to version {version}: {report}")
    return dg.MaterializeResult(metadata={k: v for k, v in report.items() if not isinstance(v, float | np.floating)
                                          or np.isfinite(v)})
