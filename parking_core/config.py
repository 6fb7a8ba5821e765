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
    # How long the writer waits for a lock another process holds (CLI import, pipeline) before 503.
    sqlite_busy_timeout_s: float = Field(default=10.0, gt=0)
    # Cap on the SQLite file in pages (4 KiB each); 0 = no cap. Past it writes answer 503 as on a full disk.
    sqlite_max_pages: int = Field(default=0, ge=0)
    # A request that waited this long for its commit gets 503 (its retry is then a duplicate at worst).
    store_write_timeout_s: float = Field(default=30.0, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # Readings stamped further ahead than this are refused: the device clock is wrong.
    max_clock_skew_s: int = Field(default=300, ge=0)
    # The API keeps a lot it looked up this long (0 = look it up on every request).
    lookup_cache_s: float = Field(default=5.0, ge=0)
    # Abuse limits of the API (parking_core.api.limits). 0 requests/s turns the rate limit off.
    rate_limit_per_device: float = Field(default=20.0, ge=0, description="POSTs per second per device, average")
    rate_limit_burst: int = Field(default=60, ge=1, description="POSTs a device may send at once")
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    body_timeout_s: float = Field(default=30.0, gt=0, description="longest wait for the next chunk of a body")
    max_json_depth: int = Field(default=8, ge=3)
    max_json_string: int = Field(default=1024, ge=64)
    # The dashboard's origin when it is served from elsewhere (S3 + CloudFront); the only origin CORS allows.
    cors_origin: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
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
    # Monitoring (AWS: Lambda system_monitor): an open car park silent this long is stale.
    stale_lot_minutes: int = Field(default=30, ge=1, le=1440)

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
