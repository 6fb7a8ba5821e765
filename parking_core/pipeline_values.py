"""The typed values the daily pipeline's steps hand each other.

Dagster passes them between assets (persisted by the pipeline IO manager as JSON under
`runs/<run id>/<asset>.json` in the object store); the SageMaker step scripts write the same
files under `runs/<execution id>/`, and the pipeline's condition reads the decision out of the
drift assessment's file. A value names the run that made it, so two runs never mix their data.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUNS_PREFIX = "runs"


def value_key(run_id: str, asset: str) -> str:
    """Where a run's value of an asset lives in the object store."""
    if not run_id or "/" in run_id:
        raise ValueError(f"run id {run_id!r} must be non-empty and without '/'")
    return f"{RUNS_PREFIX}/{run_id}/{asset}.json"


class PipelineValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrainDecision(PipelineValue):
    """The condition between the drift assessment and training (RetrainNeeded in SageMaker)."""

    retrain: bool
    reasons: list[str] = Field(default_factory=list)
    summary: str  # why it retrains, or why the training steps are skipped


class DriftAssessment(PipelineValue):
    """The drift test of the new days against the consolidated dataset, with its decision."""

    run_id: str
    decision: RetrainDecision
    new_days: list[date]
    report_key: str | None = None  # drift/<day>/report.json (+ .png) when a test ran
    drift: bool | None = None
    p_value: float | None = None
    effect: float | None = None
    reason: str | None = None


class DatasetSnapshot(PipelineValue):
    """The consolidated dataset as a run left it."""

    run_id: str
    key: str  # the parquet file in the object store
    rows: int
    days: list[date]
    new_days: int
    data_hash: str


class ModelPackageRef(PipelineValue):
    """A trained model package in the object store and what it was trained on."""

    run_id: str
    model_uri: str
    model_version: str
    data_hash: str
    selected: str
    val_intraday_mae: float
    val_weekly_level_mae: float
    onnx_max_abs_diff: float


class RegisteredVersion(PipelineValue):
    group: str
    version: int
    status: str
    model_uri: str
    lineage: dict[str, Any]


class Evaluation(PipelineValue):
    """The candidate against production, attached to the registered version."""

    group: str
    version: int
    report: dict[str, Any]


def decision_path(model: type[BaseModel]) -> str:
    """The JSON path of the retrain flag inside a value type (what the SageMaker condition reads)."""
    fields = [name for name, f in model.model_fields.items() if f.annotation is RetrainDecision]
    if len(fields) != 1:
        raise TypeError(f"{model.__name__} must hold exactly one RetrainDecision, found {fields}")
    return f"{fields[0]}.retrain"
