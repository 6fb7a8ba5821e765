"""Deploy a registered version behind the SageMaker Serverless Endpoint: a new model, a new
endpoint config with ServerlessConfig, then update (or create) the endpoint. The previous
model and config are kept, so a rollback is one UpdateEndpoint away."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from parking_core.registry import ModelVersion


@dataclass
class ServerlessDeployer:
    endpoint_name: str
    image_uri: str
    role_arn: str
    memory_mb: int = 2048
    max_concurrency: int = 5
    client: Any = None
    region: str = "eu-west-2"

    def __post_init__(self) -> None:
        if self.client is None:
            import boto3

            self.client = boto3.client("sagemaker", region_name=self.region)
        if self.memory_mb not in range(1024, 6145, 1024):
            raise ValueError("serverless memory must be 1024..6144 MB in steps of 1024")

    def __call__(self, version: ModelVersion) -> None:
        tag = hashlib.sha256(f"{version.model_uri}|{self.image_uri}".encode()).hexdigest()[:8]
        model_name = f"{self.endpoint_name}-v{version.version}-{tag}"[:63]
        self.client.create_model(
            ModelName=model_name,
            ExecutionRoleArn=self.role_arn,
            PrimaryContainer={
                "Image": self.image_uri,
                # The package is a folder of files: uncompressed S3 model data, copied to /opt/ml/model.
                "ModelDataSource": {"S3DataSource": {"S3Uri": version.model_uri.rstrip("/") + "/",
                                                     "S3DataType": "S3Prefix", "CompressionType": "None"}},
                "Environment": {"PARKCAST_MODEL_VERSION": str(version.version)},
            },
        )
        config_name = f"{model_name}-m{self.memory_mb}-c{self.max_concurrency}"[:63]
        self.client.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[{
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "ServerlessConfig": {"MemorySizeInMB": self.memory_mb, "MaxConcurrency": self.max_concurrency},
            }],
        )
        if self._endpoint_exists():
            self.client.update_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=config_name)
        else:
            self.client.create_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=config_name)

    def _endpoint_exists(self) -> bool:
        try:
            self.client.describe_endpoint(EndpointName=self.endpoint_name)
        except self.client.exceptions.ClientError as exc:
            if "Could not find" in str(exc) or "ValidationException" in str(exc):
                return False
            raise
        return True
