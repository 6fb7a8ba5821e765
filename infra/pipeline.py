"""The SageMaker pipeline definition the ML stack deploys: exactly what
`sagemaker_adapter.compiler.compile_definition` emits for the deployment's settings.

The compiler needs concrete strings for the role, the buckets and the images, which only exist
as CloudFormation tokens at synth time. So it compiles once with unique placeholder values, each
placeholder is replaced by a `${Name}` reference, and the stack hands the text to `Fn::Sub`
with the real role ARN, bucket names and image URIs. One compile, no post-editing of the JSON
structure, and the test can undo the substitution and compare with a fresh compile."""

from __future__ import annotations

import json

from infra.settings import InfraSettings

OBJECT_PREFIX = "parkcast"  # the object store root inside the data bucket: s3://<bucket>/parkcast

# Fn::Sub variable -> the stand-in the compiler sees. Distinct, and none is part of another.
PLACEHOLDERS = {
    "RoleArn": "arn:aws:iam::000000000000:role/parkcast-placeholder-role",
    "ArtifactsBucket": "parkcast-placeholder-artifacts",
    "DataBucket": "parkcast-placeholder-data",
    "PipelineImage": "000000000000.dkr.ecr.eu-west-2.amazonaws.com/parkcast-placeholder-pipeline:latest",
    "ServingImage": "000000000000.dkr.ecr.eu-west-2.amazonaws.com/parkcast-placeholder-serving:latest",
}


def compile_options(settings: InfraSettings):
    from sagemaker_adapter.compiler import CompileOptions

    return CompileOptions(
        pipeline_name=settings.pipeline_name, region=settings.region, role_arn=PLACEHOLDERS["RoleArn"],
        artifacts_bucket=PLACEHOLDERS["ArtifactsBucket"],
        input_prefix=f"s3://{PLACEHOLDERS['DataBucket']}/{OBJECT_PREFIX}",
        pipeline_image=PLACEHOLDERS["PipelineImage"], serving_image=PLACEHOLDERS["ServingImage"],
        model_group=settings.model_package_group, timezone=settings.timezone, step_minutes=settings.grid_step_minutes,
    )


def compiled(settings: InfraSettings) -> str:
    """A fresh compile of the asset graph (parking_assets.definitions) for these settings."""
    from parking_assets.definitions import defs
    from sagemaker_adapter.compiler import compile_definition

    return compile_definition(defs, compile_options(settings))


def definition_for_sub(settings: InfraSettings) -> tuple[str, list[str]]:
    """The compiled JSON (compact) with `${Name}` where each placeholder stood, and the names
    used: Fn::Sub's template and the variables it needs."""
    body = json.dumps(json.loads(compiled(settings)), sort_keys=True, separators=(",", ":"))
    body = body.replace("${", "${!")  # literal "${" in the JSON stays literal through Fn::Sub
    for name in ("RoleArn", "PipelineImage", "ServingImage", "DataBucket"):
        if PLACEHOLDERS[name] not in body:
            raise ValueError(f"the compiled pipeline no longer mentions its {name}: update infra/pipeline.py")
    used = [name for name, value in PLACEHOLDERS.items() if value in body]
    for name in used:
        body = body.replace(PLACEHOLDERS[name], "${" + name + "}")
    return body, used
