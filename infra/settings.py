"""The deployment's settings, read from CDK context (`cdk.json`, or `-c parkcast:<key>=<value>`),
with the defaults documented in docs/deploy-aws.md. Validated once, before any stack is built,
so a bad value fails the synth with a message naming the key."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PREFIX = "parkcast:"


@dataclass(frozen=True)
class InfraSettings:
    region: str = "eu-west-2"
    # Names: DynamoDB tables are "<name>-lots" etc., as parking_core.store.dynamodb expects.
    name: str = "parkcast"
    alarm_email: str = ""  # empty: the SNS topic has no e-mail subscription
    model_package_group: str = "parkcast-forecaster"
    pipeline_name: str = "parkcast-daily"
    endpoint_name: str = "parkcast-forecaster"
    endpoint_memory_mb: int = 2048
    endpoint_max_concurrency: int = 5
    # Schedules run in this timezone (daylight saving included); also the pipeline's Timezone parameter.
    timezone: str = "Europe/London"
    grid_step_minutes: int = 30
    # The export takes the previous UTC day, so it must fire after midnight UTC in every season.
    export_time: str = "01:30"
    pipeline_time: str = "03:00"
    monitor_every_minutes: int = 5
    stale_lot_minutes: int = 30
    log_retention_days: int = 30
    api_rate_limit: int = 50  # requests per second, steady
    api_burst_limit: int = 100
    # Caps the ingestion Lambda so a flood cannot run up DynamoDB and endpoint costs; 0 = no cap
    # (needed in new accounts whose concurrency quota is 10).
    ingest_reserved_concurrency: int = 10
    endpoint_p99_latency_ms: int = 2000
    api_p99_latency_ms: int = 3000
    # Tests only: Docker image assets become fixed placeholder URIs and zip functions take their
    # handler folder instead of the lambda/build.py output (no Docker, no build, no network).
    placeholder_assets: bool = False

    @classmethod
    def from_context(cls, get) -> InfraSettings:
        """`get(key)` returns the context value or None (App.node.try_get_context)."""
        values = {}
        for f in fields(cls):
            raw = get(PREFIX + _camel(f.name))
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, raw, type(getattr(cls, f.name)))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        def fail(key: str, why: str):
            raise ValueError(f"context {PREFIX}{_camel(key)}: {why}")

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            fail("timezone", f"unknown IANA timezone {self.timezone!r}")
        for key in ("export_time", "pipeline_time"):
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", getattr(self, key)):
                fail(key, f"expected HH:MM, got {getattr(self, key)!r}")
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", self.name):
            fail("name", "lowercase letters, digits and '-', 2-31 characters")
        if self.endpoint_memory_mb not in range(1024, 6145, 1024):
            fail("endpoint_memory_mb", "1024..6144 in steps of 1024 (SageMaker Serverless)")
        if not 1 <= self.endpoint_max_concurrency <= 200:
            fail("endpoint_max_concurrency", "1..200")
        if self.alarm_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.alarm_email):
            fail("alarm_email", f"not an e-mail address: {self.alarm_email!r}")
        if self.monitor_every_minutes < 1 or self.stale_lot_minutes < self.monitor_every_minutes:
            fail("stale_lot_minutes", "at least monitorEveryMinutes (and that at least 1)")
        if self.ingest_reserved_concurrency < 0:
            fail("ingest_reserved_concurrency", "0 (no cap) or more")

    @staticmethod
    def clock(value: str) -> time:
        return time.fromisoformat(value)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _coerce(name: str, raw, kind: type):
    # `-c key=value` on the command line always gives a string; cdk.json may give the real type.
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "false"):
                return str(raw).lower() == "true"
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context {PREFIX}{_camel(name)}: expected {kind.__name__}, got {raw!r}") from None


# The CloudWatch namespace and `service` dimension of the handlers' Powertools metrics
# (parking_core.aws.http); a test holds them equal.
METRICS_NAMESPACE = "parkcast"
SERVICE = "parkcast"
