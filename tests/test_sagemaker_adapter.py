"""The SageMaker adapter: the pipeline compiled from the asset graph (offline JSON checks),
upsert/start on moto, and the docker-less local runner against the Dagster materialization on
the sample data, with and without injected drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import dagster as dg
import pytest
from conftest import REPO, load_sample

from parking_assets.definitions import defs
from parking_core.status import LAST_RUN_KEY
from sagemaker_adapter.compiler import compile_definition


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(compile_definition(defs))


def test_compiled_steps_types_order_and_condition(definition):
    steps = definition["Steps"]
    assert [(s["Name"], s["Type"]) for s in steps] == [("CheckDataDrift", "Processing"), ("RetrainNeeded", "Condition")]
    drift, condition = steps
    assert drift["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", "-m", "sagemaker_adapter.steps.drift_detector"]
    # The condition reads the drift assessment's typed value (runs/<execution>/drift_report.json) at
    # the path of its RetrainDecision; nothing of it is spelled in the asset's metadata.
    assert drift["PropertyFiles"] == [{"FilePath": "drift_report.json", "OutputName": "runs",
                                       "PropertyFileName": "CheckDataDriftDecision"}]
    (cond,) = condition["Arguments"]["Conditions"]
    assert cond["Type"] == "Equals" and cond["RightValue"] is True
    assert cond["LeftValue"] == {"Std:JsonGet": {"Path": "decision.retrain", "PropertyFile": {
        "Get": "Steps.CheckDataDrift.PropertyFiles.CheckDataDriftDecision"}}}
    # Inputs from the parents' object prefixes (daily_readings, reference_dataset) and its own;
    # outputs: its own prefix and its value under runs/<execution id>.
    assert io_prefixes(drift) == (["dataset", "drift", "readings"], ["drift", "runs"])
    branch = condition["Arguments"]["IfSteps"]
    assert io_prefixes(branch[0]) == (["dataset", "readings"], ["dataset", "runs"])
    assert [(s["Name"], s["Type"]) for s in branch] == [
        ("ConsolidateData", "Processing"), ("TrainParkingModel", "Training"), ("RegisterModel", "RegisterModel")]
    assert condition["Arguments"]["ElseSteps"] == []
    train, register = branch[1]["Arguments"], branch[2]["Arguments"]
    assert branch[1]["DependsOn"] == ["ConsolidateData"]  # from the graph edge consolidated_dataset -> forecaster
    assert train["Environment"]["PARKCAST_STEP_MODULE"] == "sagemaker_adapter.steps.train_pipeline"
    assert train["InputDataConfig"][0]["ChannelName"] == "dataset"
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    assert register["ModelPackageGroupName"] == {"Get": "Parameters.ModelPackageGroup"}
    assert register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == {
        "Get": "Steps.TrainParkingModel.ModelArtifacts.S3ModelArtifacts"}
    metrics = register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]["Std:Join"]["Values"]
    assert metrics[-1] == "metrics.json"
    names = {p["Name"]: p for p in definition["Parameters"]}
    assert {"InputPrefix", "DriftPValue", "ModelPackageGroup", "ForceRetrain", "CheckDataDriftInstanceType",
            "ConsolidateDataInstanceType", "TrainParkingModelInstanceType"} <= set(names)
    assert names["TrainParkingModelInstanceType"]["DefaultValue"] == "ml.m5.xlarge"
    assert names["ForceRetrain"]["EnumValues"] == ["true", "false"]


def io_prefixes(step: dict) -> tuple[list[str], list[str]]:
    args = step["Arguments"]
    inputs = sorted(i["InputName"] for i in args["ProcessingInputs"])
    outputs = sorted(o["OutputName"] for o in args["ProcessingOutputConfig"]["Outputs"])
    return inputs, outputs


def test_two_compiles_are_identical(tmp_path):
    """Byte for byte, in one process and across processes with other hash seeds (set and dict
    order must not leak into the definition a deploy diffs against)."""
    assert compile_definition(defs) == compile_definition(defs)
    outs = []
    for seed in ("1", "2"):
        outs.append(tmp_path / f"pipeline-{seed}.json")
        done = subprocess.run([sys.executable, "-m", "parkcast.cli", "pipeline", "compile", "--out",
                               str(outs[-1])], env={**os.environ, "PYTHONHASHSEED": seed}, cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert json.loads(outs[0].read_text()) == json.loads(compile_definition(defs))


def test_changing_an_assets_sagemaker_metadata_changes_the_pipeline():
    from parking_assets import pipeline_assets
    from parking_assets.sagemaker_meta import training

    forecaster = pipeline_assets.forecaster.map_asset_specs(
        lambda spec: spec.replace_attributes(metadata={**spec.metadata, **training(
            "TrainParkingModel", "train_pipeline.py", instance_type="ml.c5.4xlarge", max_runtime_s=7200)}))
    others = [a for a in defs.assets if dg.AssetKey("forecaster") not in getattr(a, "keys", ())]
    changed = json.loads(compile_definition(dg.Definitions(assets=[*others, forecaster], resources=defs.resources)))
    names = {p["Name"]: p for p in changed["Parameters"]}
    assert names["TrainParkingModelInstanceType"]["DefaultValue"] == "ml.c5.4xlarge"
    train = changed["Steps"][1]["Arguments"]["IfSteps"][1]["Arguments"]
    assert train["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200


def test_compile_upsert_and_start_on_moto(tmp_path):
    from click.testing import CliRunner
    from moto import mock_aws

    from parkcast.cli import main

    out = tmp_path / "pipeline.json"
    runner = CliRunner()
    r = runner.invoke(main, ["pipeline", "compile", "--out", str(out), "--input-prefix", "s3://data/parkcast"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["Parameters"][0]["DefaultValue"] == "s3://data/parkcast"
    role = "arn:aws:iam::123456789012:role/parkcast-sagemaker"
    with mock_aws():
        import boto3

        r = runner.invoke(main, ["pipeline", "upsert", "--definition", str(out), "--role-arn", role])
        assert r.exit_code == 0, r.output
        assert r.output.strip().endswith(":pipeline/parkcast-daily")
        r = runner.invoke(main, ["pipeline", "upsert", "--definition", str(out), "--role-arn", role])  # update
        assert r.exit_code == 0, r.output
        r = runner.invoke(main, ["pipeline", "start", "--param", "ForceRetrain=true"])
        assert r.exit_code == 0 and ":pipeline/parkcast-daily/execution/" in r.output, r.output
        sm = boto3.client("sagemaker", region_name="eu-west-2")
        described = sm.describe_pipeline(PipelineName="parkcast-daily")
        assert json.loads(described["PipelineDefinition"]) == json.loads(out.read_text())
        assert len(sm.list_pipeline_executions(PipelineName="parkcast-daily")["PipelineExecutionSummaries"]) == 1
        # A bad --param is refused before any call: still one execution (inside moto, so a
        # regression could never reach a real account).
        r = runner.invoke(main, ["pipeline", "start", "--param", "nonsense"])
        assert r.exit_code == 2 and "expected Name=Value" in r.output, r.output
        assert len(sm.list_pipeline_executions(PipelineName="parkcast-daily")["PipelineExecutionSummaries"]) == 1
    r = runner.invoke(main, ["pipeline", "run-local", str(out), "--data", str(tmp_path / "d"), "--param", "Nope=1"])
    assert r.exit_code != 0 and "unknown pipeline parameter(s): Nope" in r.output
    r = runner.invoke(main, ["pipeline", "run-local", str(out), "--data", str(tmp_path / "d"),
                             "--param", "ForceRetrain=maybe"])
    assert r.exit_code != 0 and "not one of ['true', 'false']" in r.output


# -- the local runner against the Dagster materialization -----------------------------------

LOTS = ["BHMBCCMKT01", "BHMEURBRD01", "Broad Street", "NIA South", "Shopping", "Others-CCCPS8"]
TINY = {"architectures": "tft", "max_epochs": 1, "limit_train_batches": 8, "hidden_size": 8}
TINY_PARAMS = {"Architectures": "tft", "MaxEpochs": "1", "LimitTrainBatches": "8", "HiddenSize": "8"}


def seeded_store(data_dir, until: date, after: date | None = None, shift: float = 0.0):
    """The sample's six lots into a fresh SQLite file; days after `after` scaled by 1 + shift."""
    from parking_core.store.sqlite import SQLiteStore

    def scaled(r):
        if after and shift and r.observed_at.date() > after:
            return r.model_copy(update={"occupied": min(r.capacity, round(r.occupied * (1 + shift)))})
        return r

    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    load_sample(store, lambda r: r.lot_id in LOTS and r.observed_at.date() <= until, scaled)
    return store


def export_until(store, objects, until: date) -> None:
    from parking_core.export import export_day, exported_days

    day, done = date(2016, 10, 4), set(exported_days(objects))
    while day <= until:
        if day not in done:
            export_day(store, objects, day)
        day += timedelta(days=1)


@pytest.mark.slow
def test_local_runner_takes_the_dagster_decisions_with_the_same_metrics(tmp_path, definition, monkeypatch):
    """Both sides: first run (no dataset) trains and registers; a calm week -> no retrain; a week
    with +15 % occupancy -> retrain. Same decisions, same validation MAE (seeded)."""
    from parkcast.pipeline_runner import run_pipeline
    from parking_core.config import Settings
    from parking_core.objectstore import ObjectStore
    from parking_core.registry import ApprovalStatus
    from parking_core.registry.local import LocalModelRegistry
    from sagemaker_adapter.local_runner import LocalRunner

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))
    (tmp_path / "dagster-home").mkdir()
    group = "parkcast-forecaster"
    stages = [(date(2016, 11, 6), 0.0), (date(2016, 11, 13), 0.0), (date(2016, 11, 18), 0.15)]
    sides = {}
    for side in ("dagster", "runner"):
        data_dir = tmp_path / side
        data_dir.mkdir()
        settings = Settings(data_dir=data_dir)
        objects, registry = ObjectStore(settings.objects_url), LocalModelRegistry(settings.registry_path)
        decisions, maes = [], []
        for i, (until, shift) in enumerate(stages):
            store = seeded_store(data_dir, until, after=date(2016, 11, 13), shift=shift)
            if side == "dagster":
                outcome = run_pipeline(settings, **TINY)
                assert outcome.success, outcome.summary()
                decisions.append(outcome.decision)
            else:
                export_until(store, objects, until)
                result = LocalRunner(definition, data_dir, registry, TINY_PARAMS, echo=False,
                                     execution_id=f"local-{i}").run()
                decisions.append(objects.get_json(LAST_RUN_KEY)["decision"])
                assert [s.status for s in result.steps if s.name == "RetrainNeeded"] == ["Succeeded"]
            versions = registry.list(group)
            maes.append([v.metrics["val_intraday_mae"] for v in versions])
            if i == 0:  # a person approves the first version; it goes to production
                registry.set_status(group, 1, ApprovalStatus.APPROVED, "test")
                registry.set_production(group, 1)
        sides[side] = (decisions, maes, registry.list(group))

    (d_dec, d_mae, d_versions), (r_dec, r_mae, r_versions) = sides["dagster"], sides["runner"]
    print(f"decisions: {d_dec}\nDagster MAE per stage {d_mae}\nrunner MAE per stage {r_mae}")
    assert d_dec == r_dec
    assert d_dec[0] == "retrain: no consolidated dataset yet, no production model"
    assert d_dec[1] == "no retrain: no drift and production is version 1"
    assert d_dec[2].startswith("retrain: drift detected")
    assert [len(m) for m in d_mae] == [len(m) for m in r_mae] == [1, 1, 2]
    assert r_mae == d_mae  # seeded training on the same data: the same validation MAE, bit for bit
    assert [v.status for v in r_versions] == [ApprovalStatus.APPROVED, ApprovalStatus.PENDING]
    runner_v2 = r_versions[-1]
    assert runner_v2.lineage["run_id"] == "local-2" and runner_v2.model_uri.startswith("file://")
    assert runner_v2.lineage["data_hash"] == d_versions[-1].lineage["data_hash"]


@pytest.mark.parametrize(("argument", "value"), [("--force-retrain", "yes"), ("--force-retrain", "1"),
                                                 ("--drift-p-value", "1.5"), ("--grid-step-minutes", "0")])
def test_the_drift_steps_arguments_are_checked_not_guessed(argument, value, capsys, tmp_path):
    """A ForceRetrain of "yes" used to be read as false; every argument is now checked by argparse."""
    from sagemaker_adapter.steps.drift_detector import main as drift_step

    required = ["--objects", str(tmp_path), "--out", str(tmp_path / "out"), "--asset", "drift_assessment",
                "--timezone", "UTC", "--grid-step-minutes", "30"]
    with pytest.raises(SystemExit) as refused:
        drift_step([*required, argument, value])
    assert refused.value.code == 2 and f"argument {argument}: invalid" in capsys.readouterr().err
