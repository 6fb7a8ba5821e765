"""Resources per deployment: `local` (SQLite, data folder, local registry) or `aws`
(DynamoDB, S3, SageMaker Model Registry), chosen in definitions.py from PARKCAST_DEPLOYMENT."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from parking_core.config import Settings
from parking_core.objectstore import ObjectStore
from parking_core.store import Store, open_store


class ParkcastResource(dg.ConfigurableResource):
    """parking_core's store and object store, configured like the rest of parkcast."""

    data_dir: str = ".parkcast"
    store_kind: str = "sqlite"
    object_store_url: str | None = None
    aws_region: str = "eu-west-2"
    dynamodb_table_prefix: str = "parkcast"

    @cached_property
    def settings(self) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            store=self.store_kind,
            object_store_url=self.object_store_url,
            aws_region=self.aws_region,
            dynamodb_table_prefix=self.dynamodb_table_prefix,
        )

    def store(self) -> Store:
        return open_store(self.settings)

    def objects(self) -> ObjectStore:
        return ObjectStore(self.settings.objects_url)


class PipelineConfig(dg.ConfigurableResource):
    """Knobs of the daily pipeline (also the SageMaker pipeline's parameters)."""

    model_group: str = "parkcast-forecaster"
    reference_days: int = 21
    drift_p_value: float = 0.05
    drift_min_effect: float = 0.05  # median log-ratio shift a drift must reach
    force_retrain: bool = False
    evaluation_days: int = 7
    architectures: str = "gbm"
    max_epochs: int | None = None
    limit_train_batches: int | None = None
    hidden_size: int | None = None
    # No refit on the validation block: the candidate's last `evaluation_days` stay unseen, so
    # the evaluation against production is out of sample for both.
    refit: bool = False

    def train_config(self):
        from parking_core.forecasting.training import TrainConfig

        return TrainConfig.for_pipeline(self.architectures, self.refit, self.evaluation_days,
                                        max_epochs=self.max_epochs, limit_train_batches=self.limit_train_batches,
                                        hidden_size=self.hidden_size)


class RegistryResource(dg.ConfigurableResource):
    kind: str = "local"  # local | sagemaker
    path: str = ".parkcast/registry.sqlite3"
    aws_region: str = "eu-west-2"

    def registry(self):
        if self.kind == "sagemaker":
            from parking_core.registry.sagemaker import SageMakerModelRegistry

            return SageMakerModelRegistry(region=self.aws_region)
        from parking_core.registry.local import LocalModelRegistry

        return LocalModelRegistry(self.path)


def pipeline_resources(parkcast: ParkcastResource, pipeline: PipelineConfig,
                       registry: RegistryResource) -> dict[str, dg.ConfigurableResource]:
    """The resources the MLOps assets need, with the IO manager of their typed values."""
    from parking_assets.io_manager import PipelineValueIOManager

    return {"parkcast": parkcast, "pipeline": pipeline, "registry": registry,
            "pipeline_values": PipelineValueIOManager(parkcast=parkcast)}


def resources_for(deployment: str, settings: Settings) -> dict[str, dg.ConfigurableResource]:
    pipeline = PipelineConfig(model_group=settings.model_group)
    if deployment == "aws":
        return pipeline_resources(
            ParkcastResource(
                store_kind="dynamodb",
                object_store_url=settings.object_store_url,
                aws_region=settings.aws_region,
                dynamodb_table_prefix=settings.dynamodb_table_prefix,
            ),
            pipeline,
            RegistryResource(kind="sagemaker", aws_region=settings.aws_region),
        )
    return pipeline_resources(
        ParkcastResource(data_dir=str(settings.data_dir.resolve()), object_store_url=settings.object_store_url),
        pipeline,
        RegistryResource(path=str(settings.registry_path.resolve())),
    )
