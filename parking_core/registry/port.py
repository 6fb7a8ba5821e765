"""Model registry port, with SageMaker Model Registry's states and transitions.

A version is registered as PendingManualApproval; only a person moves it to Approved or
Rejected (the code never approves). Production is a separate pointer that the promotion step
moves to an Approved version, keeping the previous one for rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class ApprovalStatus(StrEnum):
    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


# As SageMaker allows: a pending version is decided either way; a decision can be reversed.
TRANSITIONS: dict[ApprovalStatus, set[ApprovalStatus]] = {
    ApprovalStatus.PENDING: {ApprovalStatus.APPROVED, ApprovalStatus.REJECTED},
    ApprovalStatus.APPROVED: {ApprovalStatus.REJECTED},
    ApprovalStatus.REJECTED: {ApprovalStatus.APPROVED},
}


class RegistryError(Exception):
    pass


class InvalidTransition(RegistryError):
    pass


class VersionNotFound(RegistryError):
    pass


@dataclass
class ModelVersion:
    group: str
    version: int
    status: ApprovalStatus
    model_uri: str  # where the model package lives (folder or s3:// prefix)
    created_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)  # data_hash, code_version, run_id, ...
    evaluation: dict[str, Any] | None = None  # candidate vs production report
    promotion: dict[str, Any] | None = None  # the promotion decision: promoted or refused, why
    status_note: str = ""
    arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        d["created_at"] = self.created_at.isoformat()
        return d


def check_transition(current: ApprovalStatus, new: ApprovalStatus) -> None:
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"cannot move a version from {current} to {new}")


class ProductionPointerMixin:
    """What every adapter shares about the production pointer."""

    def production(self, group: str) -> ModelVersion | None:
        history = self.production_history(group)  # type: ignore[attr-defined]
        return self.get(group, history[-1]) if history else None  # type: ignore[attr-defined]

    def _require_approved(self, group: str, version: int) -> None:
        if self.get(group, version).status != ApprovalStatus.APPROVED:  # type: ignore[attr-defined]
            raise RegistryError(f"version {version} is not Approved; only approved versions go to production")


class ModelRegistry(Protocol):
    def register(self, group: str, model_uri: str, metrics: dict, lineage: dict) -> ModelVersion:
        """A new version, always PendingManualApproval."""
        ...

    def get(self, group: str, version: int) -> ModelVersion: ...
    def list(self, group: str) -> list[ModelVersion]: ...
    def set_status(self, group: str, version: int, status: ApprovalStatus, note: str = "") -> ModelVersion: ...
    def attach_evaluation(self, group: str, version: int, report: dict) -> None: ...
    def record_promotion(self, group: str, version: int, decision: dict) -> None: ...
    def production(self, group: str) -> ModelVersion | None: ...
    def set_production(self, group: str, version: int) -> None:
        """Only an Approved version; the previous production is remembered for rollback."""
        ...

    def production_history(self, group: str) -> list[int]: ...
