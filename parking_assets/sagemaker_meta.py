"""Metadata the SageMaker compiler reads off the asset graph: `sagemaker_step` (which step an
asset compiles to, or which Lambda does its job in AWS) and `object_prefix` (where an asset's
data lives in the object store). A step's inputs and outputs are not spelled here: the compiler
derives them from the graph's edges and the assets' prefixes and value types."""

import dagster as dg

STEPS = "sagemaker_adapter.steps"
OBJECT_PREFIX = "object_prefix"


def sagemaker_step(kind: str, name: str | None = None, **settings) -> dict:
    """kind: processing | condition | training | register | lambda."""
    return {"sagemaker_step": dg.MetadataValue.json({"kind": kind, "name": name, **settings})}


def object_prefix(prefix: str) -> dict:
    return {OBJECT_PREFIX: prefix}


def processing(name: str, script: str, instance_type: str = "ml.m5.large", **settings) -> dict:
    return sagemaker_step("processing", name, module=f"{STEPS}.{script.removesuffix('.py')}", script=script,
                          instance_type=instance_type, instance_count=1, volume_gb=30, **settings)


def training(name: str, script: str, instance_type: str = "ml.m5.xlarge", max_runtime_s: int = 3600) -> dict:
    return sagemaker_step("training", name, module=f"{STEPS}.{script.removesuffix('.py')}", script=script,
                          instance_type=instance_type, instance_count=1, volume_gb=30, max_runtime_s=max_runtime_s)
