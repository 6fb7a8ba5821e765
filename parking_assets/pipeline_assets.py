"""The daily MLOps graph: drift_report -> [retrain_decision] -> consolidated_dataset ->
forecaster -> registered_model -> model_evaluation. Each asset is a thin adapter over
parking_core.pipeline_steps and returns a typed value (parking_core.pipeline_values) that its
downstream assets receive as an input, through the pipeline IO manager: a run registers and
evaluates exactly the model it trained. `sagemaker_step` names the SageMaker step it compiles to."""

import math
import tempfile
from pathlib import Path

import dagster as dg

from parking_assets.export_assets import daily_readings
from parking_assets.resources import ParkcastResource, PipelineConfig, RegistryResource
from parking_assets.sagemaker_meta import object_prefix, processing, sagemaker_step, training
from parking_core import pipeline_steps
from parking_core.forecasting.models_dir import common_grid
from parking_core.forecasting.package import code_version, upload_package
from parking_core.pipeline_values import (
    DatasetSnapshot,
    DriftAssessment,
    Evaluation,
    ModelPackageRef,
    RegisteredVersion,
    RetrainDecision,
)
from parking_core.registry import ApprovalStatus

GROUP = "mlops"
VALUES = "pipeline_values"  # the IO manager key (parking_assets.io_manager)

reference_dataset = dg.AssetSpec(
    "reference_dataset", group_name=GROUP, metadata=object_prefix("dataset"),
    description="The consolidated dataset as the previous run left it: the drift test's reference.",
)


@dg.multi_asset(
    outs={
        "drift_report": dg.AssetOut(
            group_name=GROUP, io_manager_key=VALUES, dagster_type=DriftAssessment,
            description="Seasonal drift test of the new days against the reference dataset.",
            metadata={**processing("CheckDataDrift", "drift_detector.py",
                                   params=["Timezone", "GridStepMinutes", "DriftPValue", "DriftMinEffect",
                                           "ReferenceDays", "ForceRetrain"]),
                      **object_prefix("drift")},
        ),
        "retrain_decision": dg.AssetOut(
            group_name=GROUP, io_manager_key=VALUES, dagster_type=RetrainDecision, is_required=False,
            description="Materialized only when the model must be retrained; the run says why.",
            metadata=sagemaker_step("condition", "RetrainNeeded"),
        ),
    },
    deps=[daily_readings, reference_dataset],
    internal_asset_deps={
        "drift_report": {daily_readings.key, reference_dataset.key},
        "retrain_decision": {dg.AssetKey("drift_report")},
    },
)
def drift_check(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                registry: RegistryResource):
    timezone, step = common_grid(parkcast.store())
    check = pipeline_steps.check_drift(
        parkcast.objects(), registry.registry(), pipeline.model_group, timezone, step,
        reference_days=pipeline.reference_days, p_value=pipeline.drift_p_value, min_effect=pipeline.drift_min_effect,
        force=pipeline.force_retrain, run_id=context.run_id,
    )
    assessment, report = check.assessment, check.report
    decision = assessment.decision
    context.log.info(decision.summary + "; consolidated_dataset, forecaster and registered_model "
                     + ("run" if decision.retrain else "are skipped"))
    metadata = {"decision": decision.summary, "new_days": [d.isoformat() for d in assessment.new_days]}
    if report is not None:
        metadata.update({
            "detector": report.detector, "p_value": report.p_value, "threshold": report.threshold,
            "statistic": report.statistic, "effect": report.effect, "reason": report.reason,
            "report": dg.MetadataValue.md(report.plot_markdown()),
        })
    yield dg.Output(assessment, output_name="drift_report", metadata=metadata)
    if decision.retrain:
        yield dg.Output(decision, output_name="retrain_decision", metadata={"reasons": ", ".join(decision.reasons)})


@dg.asset(group_name=GROUP, io_manager_key=VALUES, deps=[daily_readings, reference_dataset],
          metadata={**processing("ConsolidateData", "consolidate_data.py"), **object_prefix("dataset")})
def consolidated_dataset(context: dg.AssetExecutionContext, parkcast: ParkcastResource,
                         retrain_decision: RetrainDecision) -> dg.Output[DatasetSnapshot]:
    snapshot = pipeline_steps.consolidate(parkcast.objects(), context.run_id)
    context.log.info(f"{retrain_decision.summary}: merged {snapshot.new_days} new days, {snapshot.rows} rows "
                     f"over {len(snapshot.days)} days")
    return dg.Output(snapshot, metadata={"rows": snapshot.rows, "days": len(snapshot.days),
                                         "data_hash": snapshot.data_hash, "new_days": snapshot.new_days})


@dg.asset(group_name=GROUP, io_manager_key=VALUES,
          metadata={**training("TrainParkingModel", "train_pipeline.py"), **object_prefix("models")},
          check_specs=[dg.AssetCheckSpec("forecaster_metrics_sane", asset="forecaster",
                                         description="Validation MAE is a sane rate error and the ONNX graph "
                                                     "matches torch.")])
def forecaster(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
               consolidated_dataset: DatasetSnapshot):
    objects = parkcast.objects()
    timezone, step = common_grid(parkcast.store())
    with tempfile.TemporaryDirectory() as tmp:
        package = pipeline_steps.train(objects, timezone, step, Path(tmp) / "package", pipeline.train_config())
        uri = upload_package(objects, package.path, f"models/{context.run_id}")
    ref = pipeline_steps.package_ref(package, uri, context.run_id)
    context.log.info(f"trained {ref.model_version} ({ref.selected}) on {consolidated_dataset.data_hash[:12]} -> {uri}")
    yield dg.Output(ref, metadata=ref.model_dump(mode="json"))
    yield metrics_check(ref)


def metrics_check(ref: ModelPackageRef) -> dg.AssetCheckResult:
    problems = []
    if not 0.0 < ref.val_intraday_mae < 0.5:
        problems.append(f"validation MAE {ref.val_intraday_mae} outside (0, 0.5)")
    if not ref.onnx_max_abs_diff <= 1e-4:
        problems.append(f"ONNX differs from torch by {ref.onnx_max_abs_diff}")
    return dg.AssetCheckResult(
        check_name="forecaster_metrics_sane", passed=not problems,
        metadata={"val_intraday_mae": ref.val_intraday_mae, "val_weekly_level_mae": ref.val_weekly_level_mae,
                  "onnx_max_abs_diff": ref.onnx_max_abs_diff, "problems": "; ".join(problems) or "none"},
    )


@dg.asset(group_name=GROUP, io_manager_key=VALUES,
          metadata=sagemaker_step("register", "RegisterModel", approval_status=ApprovalStatus.PENDING.value))
def registered_model(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                     registry: RegistryResource, forecaster: ModelPackageRef) -> dg.Output[RegisteredVersion]:
    registered = pipeline_steps.register(registry.registry(), parkcast.objects(), pipeline.model_group, forecaster,
                                         context.run_id, code_version())
    context.log.info(f"registered version {registered.version} as {registered.status}")
    return dg.Output(registered, metadata={"version": registered.version, "status": registered.status,
                                           "model_uri": registered.model_uri})


@dg.asset(group_name=GROUP, io_manager_key=VALUES,
          metadata=sagemaker_step("lambda", function="evaluate-promote-trigger"))
def model_evaluation(context: dg.AssetExecutionContext, parkcast: ParkcastResource, pipeline: PipelineConfig,
                     registry: RegistryResource, registered_model: RegisteredVersion) -> dg.Output[Evaluation]:
    evaluation = pipeline_steps.evaluate(registry.registry(), parkcast.objects(), parkcast.store(), registered_model,
                                         pipeline.evaluation_days)
    context.log.info(f"evaluation attached to version {evaluation.version}: {evaluation.report}")
    finite = {k: v for k, v in evaluation.report.items() if not isinstance(v, float) or math.isfinite(v)}
    return dg.Output(evaluation, metadata=finite)
