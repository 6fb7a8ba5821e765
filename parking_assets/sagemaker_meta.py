"""The `sagemaker_step` metadata each asset carries: which SageMaker Pipeline step it compiles
to (sagemaker_adapter reads it), or which Lambda does its job in AWS."""

import dagster as dg

STEPS = "sagemaker_adapter.steps"


def sagemaker_step(kind: str, name: str | None = None, **settings) -> dict:
    """kind: processing | condition | training | register | lambda."""
    return {"sagemaker_step": dg.MetadataValue.json({"kind": kind, "name": name, **settings})}


def processing(name: str, script: str, instance_type: str = "ml.m5.large", **settings) -> dict:
    return sagemaker_step("processing", name, module=f"{STEPS}.{script.removesuffix('.py')}", script=script,
                          instance_type=instance_type, instance_count=1, volume_gb=30, **settings)


def training(name: str, script: str, instance_type: str = "ml.m5.xlarge", max_runtime_s: int = 3600) -> dict:
    return sagemaker_step("training", name, module=f"{STEPS}.{script.removesuffix('.py')}", script=script,
                          instance_type=instance_type, instance_count=1, volume_gb=30, max_runtime_s=max_runtime_s)
