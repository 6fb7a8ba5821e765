"""Compile the asset graph into a SageMaker Pipeline definition with the SageMaker Python SDK v3.

Walks the steps read off the graph (sagemaker_adapter.graph) in dependency order: processing
assets become ProcessingSteps running `python3 -m <module>` in the pipeline image, reading the
object-store prefixes of their parent assets and writing their own prefix plus their typed value
(runs/<execution id>/<asset>.json, the Dagster IO manager's key); the condition asset becomes a
ConditionStep on its parent's value file at the path of the value's RetrainDecision (JsonGet);
training a TrainingStep through ModelTrainer on its parents' prefixes as channels; register a
ModelStep through ModelBuilder.register; steps downstream of the condition are its if-branch;
`lambda` assets run outside the pipeline. No step's inputs or outputs are spelled by hand.
Offline and deterministic: no AWS call, no timestamp, no random name (same graph -> same JSON).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from sagemaker_adapter.graph import StepSpec, ancestors, read_steps

# Where each step's data sits inside the containers (SageMaker's conventions).
PROCESSING = "/opt/ml/processing"
OBJECTS = f"{PROCESSING}/input/objects"  # the object store root, rebuilt from the inputs
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@dataclass
class CompileOptions:
    pipeline_name: str = "parkcast-daily"
    region: str = "eu-west-2"
    role_arn: str = "arn:aws:iam::123456789012:role/parkcast-sagemaker"
    artifacts_bucket: str = "parkcast-artifacts"
    input_prefix: str = "s3://parkcast-data/parkcast"
    pipeline_image: str = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/parkcast-pipeline:latest"
    serving_image: str = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/parkcast-serving:latest"
    model_group: str = "parkcast-forecaster"
    timezone: str = "Europe/London"
    step_minutes: int = 30


def _session(options: CompileOptions):
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")  # the role is checked at upsert, not offline
    session = PipelineSession(boto_session=boto3.Session(region_name=options.region),
                              default_bucket=options.artifacts_bucket, sagemaker_config=SDK_CONFIG)
    session._default_bucket = options.artifacts_bucket  # known bucket: no S3 call to check or create it
    return session


def build_pipeline(defs, options: CompileOptions | None = None):
    options = options or CompileOptions()
    # Some SDK v3 modules build a boto3 client at import time and need a region, even offline.
    os.environ.setdefault("AWS_DEFAULT_REGION", options.region)
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, StoppingCondition
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train.model_trainer import ModelTrainer

    from parking_core.forecasting.package import code_version
    from parking_core.pipeline_values import RUNS_PREFIX, decision_path

    session = _session(options)
    steps = read_steps(defs)
    conditioned = {p for s in steps if s.kind == "condition" for p in s.parents}  # assets a condition reads
    by_asset = {s.asset: s for s in steps}
    p = {
        "InputPrefix": ParameterString("InputPrefix", options.input_prefix),
        "ModelPackageGroup": ParameterString("ModelPackageGroup", options.model_group),
        "DriftPValue": ParameterFloat("DriftPValue", 0.05),
        "DriftMinEffect": ParameterFloat("DriftMinEffect", 0.05),
        "ReferenceDays": ParameterInteger("ReferenceDays", 21),
        "ForceRetrain": ParameterString("ForceRetrain", "false", enum_values=["true", "false"]),
        "Timezone": ParameterString("Timezone", options.timezone),
        "GridStepMinutes": ParameterInteger("GridStepMinutes", options.step_minutes),
        "Architectures": ParameterString("Architectures", "gbm"),
        "MaxEpochs": ParameterInteger("MaxEpochs", 15),
        "HiddenSize": ParameterInteger("HiddenSize", 16),
        "LimitTrainBatches": ParameterInteger("LimitTrainBatches", 0),  # 0: every batch
    }

    def under(prefix: str):
        return Join(on="/", values=[p["InputPrefix"], prefix])

    def instance_type(spec: StepSpec):
        key = f"{spec.name}InstanceType"
        p.setdefault(key, ParameterString(key, spec.settings["instance_type"]))
        return p[key]

    def environment(spec: StepSpec) -> dict:
        return {"PARKCAST_STEP_MODULE": spec.settings["module"], "PARKCAST_REGISTRY": "sagemaker",
                "PARKCAST_AWS_REGION": options.region, "PARKCAST_MODEL_GROUP": p["ModelPackageGroup"]}

    built: dict[str, object] = {}  # asset -> SDK step
    property_files: dict[str, PropertyFile] = {}
    top, branch, condition_spec = [], [], None
    for spec in steps:
        depends = [built[a] for a in spec.parents if a in built and spec.kind != "condition"]
        if spec.kind == "processing":
            processor = Processor(
                role=options.role_arn, image_uri=options.pipeline_image,
                entrypoint=["python3", "-m", spec.settings["module"]], instance_count=spec.settings["instance_count"],
                instance_type=instance_type(spec), volume_size_in_gb=spec.settings["volume_gb"],
                base_job_name=f"parkcast-{spec.name}", sagemaker_session=session, env=environment(spec),
            )
            # The parents' data is rebuilt under OBJECTS (the step's own prefix too, which it
            # extends); the step's prefix goes back where it came from, its value to runs/<exec>/.
            reads = sorted({*spec.parent_prefixes, *([spec.object_prefix] if spec.object_prefix else [])})
            inputs = [ProcessingInput(input_name=prefix, s3_input=ProcessingS3Input(
                s3_uri=under(prefix), local_path=f"{OBJECTS}/{prefix}", s3_data_type="S3Prefix",
                s3_input_mode="File")) for prefix in reads]
            run_values = Join(on="/", values=[p["InputPrefix"], RUNS_PREFIX, ExecutionVariables.PIPELINE_EXECUTION_ID])
            outputs = [ProcessingOutput(output_name=spec.object_prefix, s3_output=ProcessingS3Output(
                s3_uri=under(spec.object_prefix), local_path=f"{PROCESSING}/output/{spec.object_prefix}",
                s3_upload_mode="EndOfJob"))] if spec.object_prefix else []
            outputs.append(ProcessingOutput(output_name=RUNS_PREFIX, s3_output=ProcessingS3Output(
                s3_uri=run_values, local_path=f"{PROCESSING}/output/{RUNS_PREFIX}", s3_upload_mode="EndOfJob")))
            arguments = ["--objects", OBJECTS, "--out", f"{PROCESSING}/output",
                         "--run-id", ExecutionVariables.PIPELINE_EXECUTION_ID, "--asset", spec.asset]
            if spec.object_prefix:
                arguments += ["--publish", spec.object_prefix]
            for name in spec.settings.get("params", []):
                value = p[name]
                arguments += [f"--{_kebab(name)}", value if isinstance(value, ParameterString) else value.to_string()]
            step_files = []
            if spec.asset in conditioned:
                pf = PropertyFile(name=f"{spec.name}Decision", output_name=RUNS_PREFIX, path=f"{spec.asset}.json")
                property_files[spec.asset] = pf
                step_files.append(pf)
            step = ProcessingStep(name=spec.name, step_args=processor.run(inputs=inputs, outputs=outputs,
                                                                          arguments=arguments),
                                  property_files=step_files, depends_on=depends or None)
        elif spec.kind == "condition":
            condition_spec = spec
            continue
        elif spec.kind == "training":
            trainer = ModelTrainer(
                training_image=options.pipeline_image, role=options.role_arn, sagemaker_session=session,
                compute=Compute(instance_type=instance_type(spec), instance_count=spec.settings["instance_count"],
                                volume_size_in_gb=spec.settings["volume_gb"]),
                stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.settings["max_runtime_s"]),
                base_job_name=f"parkcast-{spec.name}",
                hyperparameters={"timezone": p["Timezone"], "step_minutes": p["GridStepMinutes"],
                                 "architectures": p["Architectures"], "max_epochs": p["MaxEpochs"],
                                 "hidden_size": p["HiddenSize"], "limit_train_batches": p["LimitTrainBatches"]},
                environment=environment(spec),
                # Uncompressed: the package lands as files under .../output/model/, so the
                # registry, the evaluation and the endpoint read it as a folder.
                output_data_config=OutputDataConfig(s3_output_path=under(spec.object_prefix), compression_type="NONE"),
            )
            channels = [InputData(channel_name=prefix, data_source=under(prefix)) for prefix in spec.parent_prefixes]
            step = TrainingStep(name=spec.name, step_args=trainer.train(input_data_config=channels),
                                depends_on=depends or None)
        elif spec.kind == "register":
            (trained,) = [built[a] for a in spec.parents if isinstance(built.get(a), TrainingStep)]
            artifacts = trained.properties.ModelArtifacts.S3ModelArtifacts
            builder = ModelBuilder(s3_model_data_url=artifacts, image_uri=options.serving_image,
                                   role_arn=options.role_arn, sagemaker_session=session)
            builder.bucket = options.artifacts_bucket
            step = ModelStep(name=spec.name, step_args=builder.register(
                model_package_group_name=p["ModelPackageGroup"],
                approval_status=spec.settings["approval_status"],
                content_types=["application/json"], response_types=["application/json"],
                model_metrics=ModelMetrics(model_statistics=MetricsSource(
                    content_type="application/json", s3_uri=Join(on="/", values=[artifacts, "metrics.json"]))),
                customer_metadata_properties={"lineage:run_id": ExecutionVariables.PIPELINE_EXECUTION_ID,
                                              "lineage:code_version": code_version()},
                description="parkcast forecaster, registered by the daily pipeline",
            ))
        else:  # lambda: EventBridge -> Lambda does it in AWS, outside the pipeline
            continue
        built[spec.asset] = step
        in_branch = condition_spec is not None and condition_spec.asset in ancestors(steps, spec.asset)
        (branch if in_branch else top).append(step)
    if condition_spec is not None:
        (source,) = condition_spec.parents  # the asset whose typed value holds the decision
        json_path = decision_path(by_asset[source].value_type)
        condition = ConditionStep(
            name=condition_spec.name,
            conditions=[ConditionEquals(left=JsonGet(step_name=built[source].name, property_file=property_files[source],
                                                     json_path=json_path), right=True)],
            if_steps=branch, else_steps=[],
        )
        top.append(condition)
    return Pipeline(name=options.pipeline_name, parameters=list(p.values()), steps=top, sagemaker_session=session)


def _kebab(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def compile_definition(defs, options: CompileOptions | None = None) -> str:
    """The pipeline definition JSON, key-sorted and indented (stable under version control)."""
    import logging

    logging.getLogger("sagemaker").setLevel(logging.ERROR)  # "popping out JobName" notices on every compile
    definition = json.loads(build_pipeline(defs, options).definition())
    return json.dumps(definition, indent=2, sort_keys=True) + "\n"
