"""SageMaker Model Registry adapter (boto3): model package groups and packages.

Metrics, lineage, evaluation and the promotion decision live in the package's
CustomerMetadataProperties (string map, 256 characters a value): each field is one entry
`<section>:<key>`. The production pointer and its history are a tag on the group.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from parking_core.registry.port import (
    ApprovalStatus,
    ModelVersion,
    ProductionPointerMixin,
    RegistryError,
    VersionNotFound,
    check_transition,
)

PRODUCTION_TAG = "parkcast:production-history"
SECTIONS = ("metrics", "lineage", "evaluation", "promotion")


def _flatten(section: str, values: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if len(text) > 256:
            raise RegistryError(f"{section}.{key} is longer than SageMaker's 256-character metadata limit")
        out[f"{section}:{key}"[:128]] = text
    return out


def _unflatten(props: dict[str, str], section: str) -> dict[str, Any] | None:
    values = {}
    for key, text in props.items():
        if key.startswith(section + ":"):
            try:
                values[key.split(":", 1)[1]] = json.loads(text)
            except json.JSONDecodeError:
                values[key.split(":", 1)[1]] = text
    return values or None


class SageMakerModelRegistry(ProductionPointerMixin):
    def __init__(self, client: Any = None, region: str = "eu-west-2", serving_image: str | None = None):
        if client is None:
            import boto3

            client = boto3.client("sagemaker", region_name=region)
        self.client = client
        self.serving_image = serving_image or "parkcast-serving:latest"

    def _ensure_group(self, group: str) -> str:
        try:
            return self.client.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupArn"]
        except self.client.exceptions.ClientError:
            return self.client.create_model_package_group(
                ModelPackageGroupName=group, ModelPackageGroupDescription="parkcast occupancy forecaster"
            )["ModelPackageGroupArn"]

    def _arn(self, group: str, version: int) -> str:
        for page in self.client.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
            for summary in page["ModelPackageSummaryList"]:
                if summary["ModelPackageVersion"] == version:
                    return summary["ModelPackageArn"]
        raise VersionNotFound(f"{group} has no version {version}")

    def _describe(self, arn: str) -> ModelVersion:
        d = self.client.describe_model_package(ModelPackageName=arn)
        props = d.get("CustomerMetadataProperties", {})
        containers = d.get("InferenceSpecification", {}).get("Containers", [{}])
        return ModelVersion(
            group=d["ModelPackageGroupName"],
            version=int(d["ModelPackageVersion"]),
            status=ApprovalStatus(d["ModelApprovalStatus"]),
            model_uri=containers[0].get("ModelDataUrl", ""),
            created_at=d["CreationTime"] if isinstance(d["CreationTime"], datetime)
            else datetime.fromisoformat(str(d["CreationTime"])),
            metrics=_unflatten(props, "metrics") or {},
            lineage=_unflatten(props, "lineage") or {},
            evaluation=_unflatten(props, "evaluation"),
            promotion=_unflatten(props, "promotion"),
            status_note=d.get("ApprovalDescription", ""),
            arn=arn,
        )

    def register(self, group: str, model_uri: str, metrics: dict, lineage: dict) -> ModelVersion:
        self._ensure_group(group)
        props = {**_flatten("metrics", metrics), **_flatten("lineage", lineage)}
        arn = self.client.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus=ApprovalStatus.PENDING.value,
            ModelPackageDescription=f"parkcast forecaster, data {lineage.get('data_hash', '?')[:12]}",
            InferenceSpecification={
                "Containers": [{"Image": self.serving_image, "ModelDataUrl": model_uri}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties=props,
        )["ModelPackageArn"]
        return self._describe(arn)

    def get(self, group: str, version: int) -> ModelVersion:
        return self._describe(self._arn(group, version))

    def list(self, group: str) -> list[ModelVersion]:
        arns = [
            s["ModelPackageArn"]
            for page in self.client.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
            for s in page["ModelPackageSummaryList"]
        ]
        return sorted((self._describe(a) for a in arns), key=lambda v: v.version)

    def _update(self, arn: str, status: str | None = None, note: str | None = None,
                props: dict[str, str] | None = None) -> None:
        # Send the whole state: SageMaker patches, but some implementations (moto) replace.
        d = self.client.describe_model_package(ModelPackageName=arn)
        self.client.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=status or d["ModelApprovalStatus"],
            ApprovalDescription=(d.get("ApprovalDescription", "") if note is None else note)[:1024],
            CustomerMetadataProperties={**d.get("CustomerMetadataProperties", {}), **(props or {})},
        )

    def set_status(self, group: str, version: int, status: ApprovalStatus, note: str = "") -> ModelVersion:
        current = self.get(group, version)
        check_transition(current.status, ApprovalStatus(status))
        self._update(current.arn, status=ApprovalStatus(status).value, note=note)
        return self.get(group, version)

    def _update_section(self, group: str, version: int, section: str, values: dict) -> None:
        self._update(self._arn(group, version), props=_flatten(section, values))

    def attach_evaluation(self, group: str, version: int, report: dict) -> None:
        self._update_section(group, version, "evaluation", report)

    def record_promotion(self, group: str, version: int, decision: dict) -> None:
        self._update_section(group, version, "promotion", decision)

    def _group_arn(self, group: str) -> str:
        return self.client.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupArn"]

    def production_history(self, group: str) -> list[int]:
        try:
            tags = self.client.list_tags(ResourceArn=self._group_arn(group))["Tags"]
        except self.client.exceptions.ClientError:
            return []
        value = next((t["Value"] for t in tags if t["Key"] == PRODUCTION_TAG), "")
        return [int(v) for v in value.split("/") if v]

    def set_production(self, group: str, version: int) -> None:
        self._require_approved(group, version)
        history = (self.production_history(group) + [version])[-40:]
        arn = self._group_arn(group)
        self.client.delete_tags(ResourceArn=arn, TagKeys=[PRODUCTION_TAG])
        self.client.add_tags(ResourceArn=arn, Tags=[{"Key": PRODUCTION_TAG, "Value": "/".join(map(str, history))}])
