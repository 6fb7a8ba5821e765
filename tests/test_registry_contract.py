"""One contract suite for the local (SQLite) registry and SageMaker's (moto)."""

from __future__ import annotations

import pytest

from parking_core.registry import ApprovalStatus, InvalidTransition, RegistryError, VersionNotFound, rollback
from parking_core.registry.local import LocalModelRegistry

GROUP = "parkcast-forecaster"


@pytest.fixture(params=["local", "sagemaker"])
def registry(request, tmp_path):
    if request.param == "local":
        yield LocalModelRegistry(tmp_path / "registry.sqlite3")
        return
    from moto import mock_aws

    from parking_core.registry.sagemaker import SageMakerModelRegistry

    with mock_aws():
        image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/parkcast-serving:1"
        yield SageMakerModelRegistry(region="eu-west-2", serving_image=image)


def register(registry, n=1):
    return [
        registry.register(GROUP, f"s3://bucket/models/m{i}/model.tar.gz", {"val_mae": 0.03 + i / 1000},
                          {"data_hash": f"h{i}", "code_version": "0.1.0", "run_id": f"run-{i}"})
        for i in range(n)
    ]


def test_registered_versions_are_pending_with_metrics_and_lineage(registry):
    v1, v2 = register(registry, 2)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.status == ApprovalStatus.PENDING
    got = registry.get(GROUP, 2)
    assert got.metrics == {"val_mae": 0.031} and got.lineage["run_id"] == "run-1"
    assert got.model_uri.endswith("m1/model.tar.gz")
    assert [v.version for v in registry.list(GROUP)] == [1, 2]
    with pytest.raises(VersionNotFound):
        registry.get(GROUP, 9)


def test_transitions(registry):
    (v,) = register(registry)
    approved = registry.set_status(GROUP, v.version, ApprovalStatus.APPROVED, "looks good - ana")
    assert approved.status == ApprovalStatus.APPROVED and approved.status_note == "looks good - ana"
    with pytest.raises(InvalidTransition):
        registry.set_status(GROUP, v.version, ApprovalStatus.PENDING)
    assert registry.set_status(GROUP, v.version, ApprovalStatus.REJECTED).status == ApprovalStatus.REJECTED


def test_evaluation_and_promotion_records(registry):
    (v,) = register(registry)
    registry.attach_evaluation(GROUP, v.version, {"candidate_mae": 0.028, "production_mae": 0.03, "window": "7d"})
    registry.record_promotion(GROUP, v.version, {"promoted": False, "reason": "worse than production"})
    got = registry.get(GROUP, v.version)
    assert got.evaluation["candidate_mae"] == 0.028 and got.promotion["promoted"] is False


def test_production_pointer_and_rollback(registry):
    v1, v2, v3 = register(registry, 3)
    assert registry.production(GROUP) is None
    with pytest.raises(RegistryError):
        registry.set_production(GROUP, v1.version)  # pending: never
    for v in (v1, v2):
        registry.set_status(GROUP, v.version, ApprovalStatus.APPROVED)
        registry.set_production(GROUP, v.version)
    assert registry.production(GROUP).version == 2 and registry.production_history(GROUP) == [1, 2]
    assert rollback(registry, GROUP).version == 1
    assert registry.production(GROUP).version == 1
    # Like `cd -`: the previous production again (a rejected one is skipped).
    registry.set_status(GROUP, 2, ApprovalStatus.REJECTED, "regression found")
    with pytest.raises(RegistryError):
        rollback(registry, GROUP)
    assert registry.get(GROUP, 3).status == ApprovalStatus.PENDING  # nothing approved by itself
    # A rejected previous version is skipped: production 3 then 4, 3 rejected -> back to 1.
    (v4,) = register(registry)
    for version in (3, v4.version):
        registry.set_status(GROUP, version, ApprovalStatus.APPROVED)
        registry.set_production(GROUP, version)
    registry.set_status(GROUP, 3, ApprovalStatus.REJECTED, "regression found")
    assert registry.production_history(GROUP) == [1, 2, 1, 3, v4.version]
    assert rollback(registry, GROUP).version == 1 and registry.production(GROUP).version == 1
    # Rollback deploys the version it goes back to first; a failed deployment moves nothing.
    registry.set_production(GROUP, v4.version)
    deployed = []
    assert rollback(registry, GROUP, deployed.append).version == 1 and [v.version for v in deployed] == [1]
    registry.set_production(GROUP, v4.version)

    def fails(version):
        raise RuntimeError("endpoint update failed")

    with pytest.raises(RuntimeError, match="endpoint update failed"):
        rollback(registry, GROUP, fails)
    assert registry.production(GROUP).version == v4.version
