"""The ports a Lambda needs, built once per container from PARKCAST_* variables (DynamoDB,
S3, SageMaker registry, runtime and endpoint deployment), then reused across invocations."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from parking_core.config import Settings


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def store(self):
        from parking_core.store import open_store

        return open_store(self.settings)

    @cached_property
    def objects(self):
        from parking_core.objectstore import ObjectStore

        return ObjectStore(self.settings.objects_url)

    @cached_property
    def registry(self):
        from parking_core.registry import open_registry

        return open_registry(self.settings)

    @cached_property
    def predictor(self):
        from parking_core.predictor import open_predictor

        return open_predictor(self.settings)

    @cached_property
    def deployer(self):
        """Puts a promoted version behind the serverless endpoint."""
        from parking_core.aws.endpoint import ServerlessDeployer

        s = self.settings
        return ServerlessDeployer(s.endpoint_name, s.serving_image, s.sagemaker_role_arn, s.serverless_memory_mb,
                                  s.serverless_max_concurrency, region=s.aws_region)


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    return Runtime(Settings())
