"""The MLOps graph materialized in-process (real SQLite, data folder, local registry, tiny
models) on synthetic lots whose days are stationary until drift is injected."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import pytest

from parking_assets.definitions import pipeline_assets
from parking_assets.promotion import promotion_job
from parking_assets.resources import ParkcastResource, PipelineConfig, RegistryResource, pipeline_resources
from parking_core.contracts import Lot, Reading
from parking_core.export import export_day
from parking_core.mlops import promotion_decision
from parking_core.registry import ApprovalStatus
from parking_core.registry.local import LocalModelRegistry
from parking_core.store.sqlite import SQLiteStore

FIRST = date(2020, 1, 6)  # a Monday; winter, so local time is UTC
LOTS = [f"LOT-{i}" for i in range(6)]
GROUP = "parkcast-forecaster"
ASSETS = pipeline_assets


def write_days(store: SQLiteStore, days: range, shift: float = 0.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed + days.start)
    shape = np.sin(np.linspace(0.2, 3.0, 18))  # the daily curve
    for d in days:
        day = FIRST + timedelta(days=d)
        weekend = day.weekday() >= 5
        batch = []
        for li, lot in enumerate(LOTS):
            level = 0.25 + 0.08 * li - (0.12 if weekend else 0.0)
            for s in range(18):
                rate = np.clip((level + 0.35 * shape[s]) * (1 + shift) + rng.normal(0, 0.02), 0, 1)
                at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8, minutes=30 * s)
                batch.append(Reading(lot_id=lot, device_id="cam", observed_at=at, capacity=200,
                                     occupied=int(round(rate * 200))))
        for i in range(0, len(batch), 100):
            store.put_readings(batch[i : i + 100])


@pytest.fixture
def env(data_dir):
    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    for lot in LOTS:
        store.put_lot(Lot(lot_id=lot, name=lot, capacity=200, timezone="Europe/London"))
    parkcast = ParkcastResource(data_dir=str(data_dir))
    registry = RegistryResource(path=str(data_dir / "registry.sqlite3"))
    return store, parkcast, registry


def export(store, parkcast, days):
    for d in days:
        export_day(store, parkcast.objects(), FIRST + timedelta(days=d))


def run(parkcast, registry, instance, **pipeline):
    config = PipelineConfig(**pipeline)  # the shipped model unless a test asks for a network
    return dg.materialize(ASSETS, resources=pipeline_resources(parkcast, config, registry), instance=instance,
                          raise_on_error=False)


def promote(parkcast, registry, instance, version):
    return promotion_job.execute_in_process(
        run_config={"ops": {"promote_version": {"config": {"version": version}}}},
        resources={"parkcast": parkcast, "pipeline": PipelineConfig(), "registry": registry},
        instance=instance,
    )


def materialized(result) -> set[str]:
    return {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_the_daily_graph_end_to_end(env):
    store, parkcast, registry = env
    reg: LocalModelRegistry = registry.registry()
    instance = dg.DagsterInstance.ephemeral()

    # First run: no dataset, no production -> consolidate, train, register, evaluate.
    write_days(store, range(0, 42))
    export(store, parkcast, range(0, 42))
    first = run(parkcast, registry, instance)
    assert first.success
    assert materialized(first) == {"drift_report", "retrain_decision", "consolidated_dataset", "forecaster",
                                   "registered_model", "model_evaluation"}
    assert [(e.check_name, e.passed) for e in first.get_asset_check_evaluations()] == [
        ("forecaster_metrics_sane", True)
    ]
    (v1,) = reg.list(GROUP)
    assert v1.status == ApprovalStatus.PENDING and v1.evaluation["candidate_mae"] > 0
    assert set(v1.lineage) >= {"data_hash", "code_version", "run_id"}

    # (c) nothing is promoted until a person approves; then the promotion job promotes.
    assert reg.production(GROUP) is None
    reg.set_status(GROUP, 1, ApprovalStatus.APPROVED, "ana: first model")
    assert promote(parkcast, registry, instance, 1).success
    assert reg.production(GROUP).version == 1
    assert (parkcast.settings.data_dir / "models" / "CURRENT").exists()

    # (a) three more stationary days: drift test passes, downstream skipped, the run says why.
    write_days(store, range(42, 45))
    export(store, parkcast, range(42, 45))
    quiet = run(parkcast, registry, instance)
    assert quiet.success and materialized(quiet) == {"drift_report"}
    skipped = {e.step_key for e in quiet.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert {"consolidated_dataset", "forecaster", "registered_model", "model_evaluation"} <= skipped
    decision = quiet.asset_materializations_for_node("drift_check")[0].metadata["decision"].value
    assert decision == "no retrain: no drift and production is version 1"
    assert len(reg.list(GROUP)) == 1
    assert parkcast.objects().exists("drift/2020-02-19/report.json")

    # (b) five days with +15 % occupancy (the test window is the last 7 new days): drift ->
    # retrain -> v2 pending + evaluation.
    write_days(store, range(45, 50), shift=0.15)
    export(store, parkcast, range(45, 50))
    drifted = run(parkcast, registry, instance)
    assert drifted.success and "registered_model" in materialized(drifted)
    meta = drifted.asset_materializations_for_node("drift_check")[0].metadata
    assert meta["decision"].value.startswith("retrain: drift detected") and meta["p_value"].value < 0.05
    v2 = reg.get(GROUP, 2)
    assert v2.status == ApprovalStatus.PENDING
    assert v2.evaluation["production_version"] == reg.get(GROUP, 1).lineage["model_version"]
    assert reg.production(GROUP).version == 1  # registration promotes nothing

    # (e) a failing training step leaves production and the registry untouched.
    write_days(store, range(50, 51))
    export(store, parkcast, range(50, 51))
    broken = dg.materialize(
        ASSETS, instance=instance, raise_on_error=False,
        resources=pipeline_resources(parkcast, PipelineConfig(architectures="no-such-model", force_retrain=True),
                                     registry),
    )
    assert not broken.success
    assert len(reg.list(GROUP)) == 2 and reg.production(GROUP).version == 1

    # (d) a network (one batch of one epoch), approved: its hold-out block travels as the floor's
    # evidence through registration and evaluation, and the promotion job does exactly what the
    # core rule reads from that evaluation, reason recorded. (Refusals by the floor and by
    # production: test_forecasting, test_lambdas.)
    network = run(parkcast, registry, instance, force_retrain=True, architectures="tft", max_epochs=1,
                  limit_train_batches=1, hidden_size=4)
    assert network.success
    v3 = reg.get(GROUP, 3)
    reg.set_status(GROUP, 3, ApprovalStatus.APPROVED, "ana: try it")
    assert v3.metrics["beats_weekly_level"] == v3.evaluation["beats_weekly_level"]
    assert v3.evaluation["rolling_origin_folds"] == 1 and "production_mae" in v3.evaluation
    allowed, reason = promotion_decision(v3.evaluation)
    assert promote(parkcast, registry, instance, 3).success
    assert reg.get(GROUP, 3).promotion["promoted"] is allowed and reg.get(GROUP, 3).promotion["reason"] == reason
    assert reg.production(GROUP).version == (3 if allowed else 1)


def test_two_runs_at_once_each_register_and_evaluate_their_own_model(env):
    """A manual run beside the scheduled one, in one Dagster instance: both train before either
    registers (the gate below holds registration until both models exist). Each run must register
    and evaluate exactly the model it trained: its run id, its data hash, its model URI."""
    store, parkcast, registry = env
    write_days(store, range(0, 35))
    export(store, parkcast, range(0, 35))
    # Test instruments that interleave the two runs: one trains at a time (torch's ONNX export
    # keeps global state), and neither registers before both have trained.
    one_trainer, both_trained = threading.Lock(), threading.Barrier(2, timeout=240)

    class RegisterWhenBothTrained(ParkcastResource):
        def objects(self):
            step = sys._getframe(1).f_code.co_name
            if step == "forecaster":
                one_trainer.acquire()
            elif step == "registered_model":
                one_trainer.release()
                both_trained.wait()
            return super().objects()

    gated = RegisterWhenBothTrained(data_dir=parkcast.data_dir)
    home = parkcast.settings.data_dir / "dagster"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(str(home))  # on disk, as `dagster dev` keeps it
    results = {}

    def pipeline_run(name: str, hidden_size: int) -> None:
        config = PipelineConfig(architectures="tft", max_epochs=1, limit_train_batches=4, hidden_size=hidden_size,
                                force_retrain=True)
        results[name] = dg.materialize(ASSETS, resources=pipeline_resources(gated, config, registry),
                                       instance=instance, raise_on_error=False)

    threads = [threading.Thread(target=pipeline_run, args=(name, size)) for name, size in (("a", 8), ("b", 4))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert set(results) == {"a", "b"} and all(r.success for r in results.values())

    reg: LocalModelRegistry = registry.registry()
    by_run = {v.lineage["run_id"]: v for v in reg.list(GROUP)}
    assert len(by_run) == 2
    for result in results.values():
        trained = result.output_for_node("forecaster")
        registered = result.output_for_node("registered_model")
        evaluation = result.output_for_node("model_evaluation")
        version = by_run[result.run_id]  # this run registered exactly one version ...
        assert trained.run_id == result.run_id and trained.model_uri.endswith(f"models/{result.run_id}")
        # ... of the model it trained, on the data it consolidated, and evaluated that version.
        assert version.model_uri == trained.model_uri == registered.model_uri
        assert version.lineage["data_hash"] == trained.data_hash
        assert version.lineage["model_version"] == trained.model_version
        assert registered.version == version.version == evaluation.version
        assert version.evaluation["candidate_version"] == trained.model_version


def test_pipeline_cli_on_the_sample_data(data_dir, monkeypatch):
    """`parkcast pipeline run` exports the days, finds no dataset yet, and trains, registers
    and evaluates a first version (pending: nobody approved it)."""
    from click.testing import CliRunner
    from conftest import SAMPLE_CSV

    from parkcast.cli import main
    from parking_core import config

    monkeypatch.setenv("PARKCAST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster"))
    config.get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(main, ["import-csv", str(SAMPLE_CSV)]).exit_code == 0
        r = runner.invoke(main, ["pipeline", "run"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "exported 59 new day(s); retrain: no consolidated dataset yet, no production model" in r.output
        r = runner.invoke(main, ["registry", "list"])
        assert "PendingManualApproval" in r.output
        # Nothing new: the next run has nothing to do and registers nothing.
        r = runner.invoke(main, ["pipeline", "run"], catch_exceptions=False)
        assert "exported 0 new day(s)" in r.output and "materialized: drift_report;" in r.output
        assert "no retrain: no new exported days since the last consolidation and version 1 awaits approval" in r.output
    finally:
        config.get_settings.cache_clear()
