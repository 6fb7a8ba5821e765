"""Settings from the environment (prefix PARKCAST_), validated once at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARKCAST_", extra="ignore")

    data_dir: Path = Field(default=Path(".parkcast"), description="Local data folder (SQLite, objects)")
    store: Literal["sqlite", "dynamodb"] = "sqlite"
    object_store_url: str | None = Field(
        default=None, description="fsspec URL of the object store; default file://<data_dir>/objects"
    )
    dynamodb_table_prefix: str = "parkcast"
    aws_region: str = "eu-west-2"
    # NORMAL: acknowledged commits survive a killed process, not a power cut (no fsync per commit in WAL);
    # FULL also survives power loss, at the cost of an fsync per commit. README "Durability" says the same.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # Readings stamped further ahead than this are refused: the device clock is wrong.
    max_clock_skew_s: int = Field(default=300, ge=0)
    log_level: str = "INFO"
    registry: Literal["local", "sagemaker"] = "local"
    model_group: str = "parkcast-forecaster"
    # Forecast endpoint the ingestion flow calls after storing readings.
    predictor: Literal["none", "http", "sagemaker"] = "none"
    predictor_url: str = "http://127.0.0.1:8080"
    predictor_timeout_s: float = Field(default=5.0, gt=0)
    endpoint_name: str = "parkcast-forecaster"
    # The dashboard: static files served at / by the local API; the Dagster UI it links to.
    web_dir: str | None = None
    dagster_url: str | None = None
    # AWS deployment of promoted versions (SageMaker Serverless Endpoint).
    serving_image: str = Field(default="", description="ECR URI of the serving image")
    sagemaker_role_arn: str = ""
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = Field(default=5, ge=1, le=200)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "parkcast.sqlite3"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite3"

    @property
    def objects_url(self) -> str:
        return self.object_store_url or (self.data_dir.resolve() / "objects").as_uri()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
