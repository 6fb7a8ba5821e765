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


def resources_for(deployment: str, settings: Settings) -> dict[str, dg.ConfigurableResource]:
    if deployment == "aws":
        return {
            "parkcast": ParkcastResource(
                store_kind="dynamodb",
                object_store_url=settings.object_store_url,
                aws_region=settings.aws_region,
                dynamodb_table_prefix=settings.dynamodb_table_prefix,
            )
        }
    return {"parkcast": ParkcastResource(data_dir=str(settings.data_dir.resolve()),
                                         object_store_url=settings.object_store_url)}
