"""Forecaster: baselines, no-peeking, ONNX parity, cold start, the CLI. Models here are tiny
(one short epoch on a few lots) so the suite stays fast; quality is measured by the benchmark."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SAMPLE_CSV, tiny_config

from parking_core.forecasting.backtest import run_backtest
from parking_core.forecasting.baselines import baseline_point_forecasts
from parking_core.forecasting.grid import readings_to_cube
from parking_core.forecasting.windows import request_at


def test_baseline_formulas():
    h = np.full((8, 4), np.nan, dtype=np.float32)
    h[0] = [0.1, 0.2, 0.3, 0.4]  # a week before day 7
    h[7, :2] = [0.15, 0.35]  # today, origin at slot 1
    out = baseline_point_forecasts(h, 7, 1, 2)
    assert out["persistence"].tolist() == pytest.approx([0.35, 0.35])
    assert out["weekly_naive"].tolist() == pytest.approx([0.3, 0.4])
    # last week's target + (now - last week at the origin slot) = 0.3 + (0.35 - 0.2)
    assert out["weekly_level"].tolist() == pytest.approx([0.45, 0.55])
    # A missing origin value: the last observation before it stands in.
    h[7, 1] = np.nan
    assert baseline_point_forecasts(h, 7, 1, 1)["persistence"][0] == pytest.approx(0.15)


def test_package_contents(package):
    files = {p.name for p in package.path.iterdir()}
    assert {"manifest.json", "preprocessing.json", "model.onnx", "model.ckpt", "metrics.json"} <= files
    m = package.manifest
    assert m["training_window"] == {"first_day": "2016-10-04", "last_day": "2016-11-20"}
    assert len(m["data_hash"]) == 64 and m["code_version"] and m["config"]["seed"] == 42
    assert package.metrics["selected"] in ("tft", "nhits")
    assert set(package.metrics["validation_baselines_mae"]) == {"persistence", "weekly_naive", "weekly_level"}
    assert package.preprocessing["input_spec"]["categorical_codes"]["lot_id"]


def test_torch_and_onnx_agree(package, readings):
    """The exported graph against the torch model on real windows, within 1e-4."""

    from parking_core.forecasting.training import TorchForecaster
    from parking_core.forecasting.windows import WindowBuilder

    assert package.metrics["onnx_max_abs_diff"] <= 1e-4
    onnx = package.forecaster()
    cls = {"tft": "TemporalFusionTransformer", "nhits": "NHiTS"}[package.manifest["architecture"]]
    import pytorch_forecasting

    model = getattr(pytorch_forecasting, cls).load_from_checkpoint(package.path / "model.ckpt")
    model.eval()
    torch_forecaster = TorchForecaster(model, WindowBuilder(onnx.spec, onnx.builder.profile, onnx.builder.holidays))
    cube = readings_to_cube(readings, "Europe/London", 30, spec=package.grid)
    requests = [
        request_at(lot, float(cube.capacity[i]), cube.days, cube.rate[i], d, s, onnx.horizon)
        for i, lot in enumerate(cube.lots) for d in (50, 60) for s in (0, 9, 16)
    ]
    windows = onnx.builder.batch(requests)
    diff = np.abs(onnx.raw(*windows) - torch_forecaster.raw(*windows)).max()
    assert diff <= 1e-4
    np.testing.assert_allclose(onnx.predict(requests), torch_forecaster.predict(requests), atol=1e-4)


@pytest.mark.parametrize("architecture", ["gbm", "tft", "nhits"])
def test_backtest_never_sees_the_future(architecture, train_frame, readings, tmp_path_factory):
    """Rewrite the RAW readings after an origin (the afternoon of the test day and every later
    day) and rebuild the grid from them: every forecast from an earlier origin must be the same,
    bit for bit. Grid building (dead-sensor mask), inputs, model and baselines are all covered."""
    from conftest import trained

    package = trained(architecture, train_frame, tmp_path_factory)
    forecaster = package.forecaster()
    test_day = date(2016, 11, 28)
    cut = pd.Timestamp("2016-11-28 12:45", tz="Europe/London")  # readings of the 13:00 slot on

    def walk(frame):
        cube = readings_to_cube(frame, "Europe/London", 30, spec=package.grid)
        return run_backtest(cube, test_day, 8, forecaster, test_end=test_day, progress=False).rows

    before = walk(readings)
    tampered = readings.copy()
    later = tampered["observed_at"] >= cut
    tampered.loc[later, "occupied"] = tampered.loc[later, "capacity"] - tampered.loc[later, "occupied"]
    after = walk(tampered)

    origin_slot = before["origin"].dt.hour * 60 + before["origin"].dt.minute
    untouched = origin_slot < 13 * 60
    cols = ["p10", "p50", "p90", "persistence", "weekly_naive", "weekly_level"]
    pd.testing.assert_frame_equal(before.loc[untouched, cols], after.loc[untouched, cols], check_exact=True)
    # ...and the tampering is visible from origins that may see it, so the check has teeth.
    assert not np.allclose(before.loc[~untouched, "p50"], after.loc[~untouched, "p50"])


def test_gbm_inputs_are_the_same_from_the_grid_and_from_a_served_request(readings):
    """Training builds inputs from the whole grid, serving from one request cut at the origin
    (35 days): equal, bit for bit."""
    from parking_core.forecasting.correction import request_design
    from parking_core.forecasting.correction_training import cube_design
    from parking_core.forecasting.features import Profile, holiday_dates

    cube = readings_to_cube(readings, "Europe/London", 30)
    holidays = holiday_dates("GB", "ENG", range(2016, 2018)) | {date(2016, 11, 21)}  # one inside, for the rule
    profile = Profile.fit(cube.lots, cube.rate[:, :40], cube.days[:40])
    first, last = 45, 50
    d, _, _, (lot, day, slot) = cube_design(cube, len(cube.days), profile, holidays, first, last, 8)
    pick = np.arange(0, len(lot), 7)
    requests = [request_at(cube.lots[lot[i]], 100.0, cube.days[day[i] - 35:], cube.rate[lot[i], day[i] - 35:], 35,
                           slot[i], 8) for i in pick]
    served = request_design(requests, profile, holidays, 8)
    np.testing.assert_array_equal(served.x, d.x[pick])
    np.testing.assert_array_equal(served.anchor, d.anchor[pick])
    np.testing.assert_array_equal(served.same_day, d.same_day[pick])


def test_gbm_trees_and_onnx_agree(gbm_package, readings):
    """The exported tree ensemble against scikit-learn on inputs it was not fitted on."""
    import onnxruntime as ort

    from parking_core.forecasting.correction import FEATURES, flat_inputs
    from parking_core.forecasting.correction_training import GbmConfig, cube_design, fit_head, trees_to_onnx

    assert gbm_package.metrics["onnx_max_abs_diff"] <= 1e-5
    cube = readings_to_cube(readings, "Europe/London", 30)
    head, profile = fit_head(cube, 40, set(), 8, GbmConfig(iterations=30))
    d, _, _, _ = cube_design(cube, len(cube.days), profile, set(), 40, len(cube.days) - 1, 8)
    x = flat_inputs(d)
    session = ort.InferenceSession(trees_to_onnx(head.model, len(FEATURES) + 1), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"inputs": x})[0][:, 0], head.model.predict(x), atol=1e-5)


def test_rolling_origin_never_uses_the_final_fold_for_choices(readings):
    """Rewrite the final fold's rates: the blend, the band and every choice fold's score stay
    the same; each fold's model only ever saw the days before it."""
    from parking_core.forecasting.correction_training import GbmConfig, fold_starts, rolling_origin

    cube = readings_to_cube(readings, "Europe/London", 30)
    starts = fold_starts(len(cube.days), 4)
    assert starts == [35, 42, 49, 56] and cube.days[starts[-1]] == date(2016, 11, 29)
    cfg = GbmConfig(iterations=20)
    a = rolling_origin(cube, set(), 8, 4, cfg, progress=False)
    tampered = readings_to_cube(readings, "Europe/London", 30)
    tampered.rate[:, starts[-1]:] = 1.0 - tampered.rate[:, starts[-1]:]
    b = rolling_origin(tampered, set(), 8, 4, cfg, progress=False)
    assert [s.role for s in a.scores] == ["choice", "choice", "choice", "final"]
    np.testing.assert_array_equal(a.blend.weight, b.blend.weight)
    np.testing.assert_array_equal(a.blend.offsets, b.blend.offsets)
    assert [s.mae for s in a.scores[:3]] == [s.mae for s in b.scores[:3]]
    assert a.scores[3].mae != b.scores[3].mae
    summary = a.summary()
    assert summary["final_fold"]["first_day"] == "2016-11-29" and "choice_folds" in summary
    assert summary["beats_weekly_level"] == (summary["mae"] < summary["weekly_level_mae"])


def test_gbm_package_serves_torch_free_with_its_fold_evidence(gbm_package, readings):
    from parking_core.contracts import Lot
    from parking_core.forecasting.serve import forecast_from_history

    files = {p.name for p in gbm_package.path.iterdir()}
    assert files == {"manifest.json", "preprocessing.json", "model.onnx", "metrics.json"}
    rolling = gbm_package.metrics["rolling_origin"]
    assert [f["role"] for f in rolling["folds"]] == ["choice", "final"]
    assert gbm_package.metrics["beats_weekly_level"] == rolling["beats_weekly_level"]
    lot = Lot(lot_id="Shopping", name="Shopping", capacity=1920, timezone="Europe/London")
    at = datetime(2016, 11, 22, 15, 10, tzinfo=UTC)
    history = readings[(readings["lot_id"] == "Shopping") & (readings["observed_at"] <= at)]
    forecast = forecast_from_history(lot, history, at, gbm_package, gbm_package.forecaster())
    served_baseline = gbm_package.metrics["serves_baseline"]
    assert forecast.source == ("baseline:weekly_level" if served_baseline else "model")
    assert len(forecast.steps) == 8 and all(0 <= s.p10 <= s.p50 <= s.p90 <= 1 for s in forecast.steps)
    # The same forecast in a process where torch and scikit-learn cannot be imported.
    code = f"""
import sys
sys.modules["torch"] = sys.modules["sklearn"] = None  # any import of them raises ImportError
from datetime import datetime, UTC
from parking_core.contracts import Lot
from parking_core.csv_import import BIRMINGHAM, read_frame
from parking_core.forecasting.package import ModelPackage
from parking_core.forecasting.serve import forecast_from_history
package = ModelPackage.load({str(gbm_package.path)!r})
frame, _ = read_frame({str(SAMPLE_CSV)!r}, BIRMINGHAM, "Europe/London")
at = datetime(2016, 11, 22, 15, 10, tzinfo=UTC)
history = frame[(frame["lot_id"] == "Shopping") & (frame["observed_at"] <= at)]
lot = Lot(lot_id="Shopping", name="Shopping", capacity=1920, timezone="Europe/London")
print(*[s.p50 for s in forecast_from_history(lot, history, at, package, package.forecaster()).steps])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert np.allclose([float(v) for v in done.stdout.split()], [s.p50 for s in forecast.steps], atol=1e-6)


def test_requests_are_cut_at_the_origin(readings):
    cube = readings_to_cube(readings, "Europe/London", 30)
    req = request_at("X", 100.0, cube.days, cube.rate[0], 50, 5, 8)
    assert req.history.shape == (51, 18)
    assert np.isnan(req.history[50, 6:]).all() and not np.isnan(req.history[50, 5])
    spill = request_at("X", 100.0, cube.days, cube.rate[0], 50, 15, 8)
    assert spill.history.shape == (52, 18) and np.isnan(spill.history[51]).all()


def test_cold_start_lot_gets_a_flagged_baseline(tft_package):
    from parking_core.contracts import Lot
    from parking_core.forecasting.serve import forecast_from_history

    forecaster = tft_package.forecaster()
    lot = Lot(lot_id="NEW-LOT", name="new", capacity=200, timezone="Europe/London")
    at = datetime(2016, 11, 22, 11, 0, tzinfo=UTC)
    times = [at - timedelta(days=1, hours=h) for h in range(6)] + [at - timedelta(minutes=20)]
    history = pd.DataFrame({"lot_id": "NEW-LOT", "observed_at": times, "occupied": 120, "capacity": 200})
    forecast = forecast_from_history(lot, history, at, tft_package, forecaster)
    assert forecast.source == "baseline:persistence"
    assert len(forecast.steps) == 8 and forecast.steps[0].p50 == pytest.approx(0.6)
    assert all(s.p10 <= s.p50 <= s.p90 for s in forecast.steps)

    empty = history.iloc[:0]
    forecast = forecast_from_history(lot, empty, at, tft_package, forecaster)
    assert forecast.source == "baseline:profile" and len(forecast.steps) == 8


def test_forecast_steps_follow_the_open_slots(tft_package, readings):
    from parking_core.contracts import Lot
    from parking_core.forecasting.serve import forecast_from_history

    lot = Lot(lot_id="Shopping", name="Shopping", capacity=1920, timezone="Europe/London")
    at = datetime(2016, 11, 22, 15, 10, tzinfo=UTC)  # 15:10 local: origin 15:00
    history = readings[(readings["lot_id"] == "Shopping") & (readings["observed_at"] <= at)]
    forecast = forecast_from_history(lot, history, at, tft_package, tft_package.forecaster())
    assert forecast.source == "model" and forecast.model_version == tft_package.version
    local = [s.target_time.strftime("%Y-%m-%d %H:%M") for s in forecast.steps]
    assert local[:3] == ["2016-11-22 15:30", "2016-11-22 16:00", "2016-11-22 16:30"]
    assert local[3] == "2016-11-23 08:00"  # closed overnight: the next open slot
    assert all(0 <= s.prob_free <= 1 for s in forecast.steps)


def _write_split(tmp_path: Path, lots: list[str]) -> tuple[Path, Path]:
    rows = SAMPLE_CSV.read_text().splitlines()
    header, body = rows[0], [r for r in rows[1:] if r.split(",")[0] in lots]
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    train.write_text("\n".join([header] + [r for r in body if r.split(",")[3][:10] <= "2016-11-20"]) + "\n")
    test.write_text("\n".join([header] + [r for r in body if r.split(",")[3][:10] >= "2016-11-21"]) + "\n")
    return train, test


def test_backtest_cli(tmp_path):
    from click.testing import CliRunner

    from parkcast.cli import main

    train, test = _write_split(tmp_path, ["Shopping", "BHMBCCMKT01", "Broad Street"])
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(
        main,
        ["backtest", "--train", str(train), "--test", str(test), "--horizon", "8", "--out", str(out),
         ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "weekly" in result.output and "coverage" in result.output
    assert "rolling-origin folds at the end of TRAIN" in result.output and " final " in result.output
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["lot_id", "origin", "target", "horizon", "p10", "p50", "p90"]
    origin, target = pd.to_datetime(pred["origin"]), pd.to_datetime(pred["target"])
    assert (target > origin).all() and (target.dt.date == origin.dt.date).all()
    assert pred["horizon"].between(1, 8).all()
    assert ((pred["p10"] <= pred["p50"]) & (pred["p50"] <= pred["p90"])).all()
    assert pred[["p10", "p50", "p90"]].stack().between(0, 1).all()
    # Every test day, every origin from 08:00 to 16:00, each later slot of that day up to 8 ahead.
    assert origin.min() == pd.Timestamp("2016-11-21 08:00") and origin.max().strftime("%H:%M") == "16:00"
    first = pred[(pred["lot_id"] == "Shopping") & (pred["origin"] == "2016-11-21 16:00:00")]
    assert first["target"].tolist() == ["2016-11-21 16:30:00"]
    observed = pd.read_csv(test)
    observed_days = observed.groupby("SystemCodeNumber")["LastUpdated"].apply(lambda t: set(t.str[:10]))
    forecast_days = pred.groupby("lot_id")["origin"].apply(lambda t: set(t.str[:10]))
    assert forecast_days.to_dict() == observed_days.to_dict()  # every lot on every day it reported
    per_origin = pred.groupby(["lot_id", "origin"]).size()
    morning = per_origin[per_origin.index.get_level_values("origin").str.endswith("08:00:00")]
    assert per_origin.max() == 8 and len(morning) > 0 and (morning == 8).all()  # 08:30 .. 12:00


def test_backtest_rejects_bad_csv(tmp_path):
    from click.testing import CliRunner

    from parkcast.cli import main

    good = tmp_path / "good.csv"
    good.write_text("SystemCodeNumber,Capacity,Occupancy,LastUpdated\nA,10,5,2016-10-04 08:00:00\n")
    missing = tmp_path / "missing.csv"
    missing.write_text("SystemCodeNumber,Capacity,LastUpdated\nA,10,2016-10-04 08:00:00\n")
    bad_time = tmp_path / "bad_time.csv"
    bad_time.write_text(
        "SystemCodeNumber,Capacity,Occupancy,LastUpdated\nA,10,5,2016-10-04 08:00:00\nA,10,5,04/10/2016 8am\n"
    )
    runner = CliRunner()
    args = ["backtest", "--out", str(tmp_path / "p.csv")]
    r = runner.invoke(main, [*args, "--train", str(missing), "--test", str(good)])
    assert r.exit_code != 0 and "missing column(s) Occupancy" in r.output
    r = runner.invoke(main, [*args, "--train", str(good), "--test", str(bad_time)])
    assert r.exit_code != 0 and "line 3" in r.output and "bad timestamp" in r.output
    r = runner.invoke(main, [*args, "--train", str(good), "--test", str(good)])
    assert r.exit_code != 0 and "into the test period" in r.output


def test_forecast_cli(tft_package, data_dir, monkeypatch):
    from click.testing import CliRunner

    from parkcast.cli import main
    from parking_core import config

    monkeypatch.setenv("PARKCAST_DATA_DIR", str(data_dir))
    config.get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(main, ["import-csv", str(SAMPLE_CSV)]).exit_code == 0
        r = runner.invoke(main, ["forecast", "--lot", "Shopping", "--at", "2016-11-22 11:05",
                                 "--model", str(tft_package.path), "--json", "--save"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        import json

        body = json.loads(r.output)
        assert body["source"] == "model" and len(body["steps"]) == 8
        assert body["steps"][0]["target_time"].startswith("2016-11-22T11:30")
        from parking_core.store import open_store

        store = open_store(config.get_settings())  # --save stored exactly what was printed
        saved = store.latest_forecast("Shopping")
        store.close()
        assert saved is not None and saved.model_dump(mode="json") == body
        r = runner.invoke(main, ["forecast", "--lot", "Shopping", "--at", "2999-01-01 08:00", "--model",
                                 str(tft_package.path), "--save"])
        assert r.exit_code == 1 and "is in the future" in r.output  # it would hide every real forecast
        r = runner.invoke(main, ["forecast", "--lot", "Shopping", "--at", "2016-11-22 11:05",
                                 "--model", str(tft_package.path)])
        assert "P(free)" in r.output and r.output.count("2016-11-2") >= 8
        assert runner.invoke(main, ["forecast", "--lot", "NOPE", "--model", str(tft_package.path)]).exit_code != 0
        r = runner.invoke(main, ["forecast", "--lot", "Shopping"])
        assert r.exit_code != 0 and "no model yet" in r.output
    finally:
        config.get_settings.cache_clear()


def test_window_builder_matches_pytorch_forecasting(train_frame):
    """Serving builds the network's input windows without torch; they must equal the tensors
    TimeSeriesDataSet built in training, sample for sample."""
    from parking_core.forecasting.training import train

    cube = readings_to_cube(train_frame, "Europe/London", 30)
    cfg = tiny_config("tft")
    result = train(cube, cfg, progress=False)
    candidate = result.candidates[0]
    dataset = candidate.validation
    builder = result.forecaster(candidate).builder
    spec = candidate.spec
    e = spec.encoder_length
    lot_codes = {v: k for k, v in spec.categorical_codes["lot_id"].items()}
    unknown_future = [j for j, n in enumerate(spec.reals) if n in ("rate", "delta", "observed", "resid")]
    known = [j for j in range(len(spec.reals)) if j not in unknown_future]
    slots = cube.spec.slots_per_day
    for i in (0, 7, len(dataset) // 2, len(dataset) - 1):
        x, _ = dataset[i]
        origin = int(x["encoder_time_idx_start"]) + e - 1
        lot = lot_codes[int(x["x_cat"][0, spec.categoricals.index("lot_id")])]
        li = cube.lots.index(lot)
        req = request_at(lot, float(cube.capacity[li]), cube.days, cube.rate[li], origin // slots, origin % slots,
                         spec.horizon)
        enc_cat, enc_cont, dec_cat, dec_cont = builder.batch([req])
        np.testing.assert_allclose(enc_cont[0], x["x_cont"][:e].numpy(), atol=1e-6)
        np.testing.assert_array_equal(enc_cat[0], x["x_cat"][:e].numpy())
        np.testing.assert_array_equal(dec_cat[0], x["x_cat"][e:].numpy())
        np.testing.assert_allclose(dec_cont[0][:, known], x["x_cont"][e:].numpy()[:, known], atol=1e-6)
        assert (dec_cont[0][:, unknown_future] == 0).all()  # the future of unknowns is never shown


def test_evaluation_then_approval_gated_promotion(gbm_package, readings, tmp_path):
    from parking_core.mlops import evaluate_candidate, pending_promotions, promote_if_better
    from parking_core.registry import ApprovalStatus
    from parking_core.registry.local import LocalModelRegistry

    reg = LocalModelRegistry(tmp_path / "registry.sqlite3")
    group = "g"
    cube = readings_to_cube(readings, "Europe/London", 30, spec=gbm_package.grid)
    deployed: list[int] = []

    def deploy(v):
        deployed.append(v.version)

    assert gbm_package.metrics["beats_weekly_level"]  # it passes the floor: production decides
    v1 = reg.register(group, str(gbm_package.path), gbm_package.metrics["candidates"]["gbm"], {"run_id": "r1"})
    report = evaluate_candidate(gbm_package, None, cube)
    assert report["window_end"] == "2016-12-05" and 0 < report["candidate_mae"] < 0.2
    reg.attach_evaluation(group, v1.version, report)
    # Registered and evaluated, but nobody approved it: nothing is promoted.
    assert pending_promotions(reg, group) == []
    assert promote_if_better(reg, group, v1.version, deploy)["promoted"] is False and deployed == []

    reg.set_status(group, v1.version, ApprovalStatus.APPROVED, "ana")
    assert [v.version for v in pending_promotions(reg, group)] == [1]
    decision = promote_if_better(reg, group, v1.version, deploy)
    assert decision["promoted"] and decision["reason"] == "no production model yet"
    assert deployed == [1] and reg.production(group).version == 1

    # A second version evaluated against production, then approved.
    v2 = reg.register(group, str(gbm_package.path), {}, {"run_id": "r2"})
    report = evaluate_candidate(gbm_package, gbm_package, cube)
    assert report["production_mae"] == pytest.approx(report["candidate_mae"])  # same model: not worse
    reg.attach_evaluation(group, v2.version, report)
    reg.set_status(group, v2.version, ApprovalStatus.APPROVED, "ana")
    assert [v.version for v in pending_promotions(reg, group)] == [2]
    assert promote_if_better(reg, group, v2.version, deploy)["promoted"]
    assert reg.production_history(group) == [1, 2]

    # A worse one is approved but refused, with the reason on the version.
    v3 = reg.register(group, str(gbm_package.path), {}, {"run_id": "r3"})
    reg.attach_evaluation(group, v3.version, {**report, "candidate_mae": report["production_mae"] * 1.2})
    reg.set_status(group, v3.version, ApprovalStatus.APPROVED, "ana")
    decision = promote_if_better(reg, group, v3.version, deploy)
    assert not decision["promoted"] and "worse than production" in reg.get(group, 3).promotion["reason"]
    assert reg.production(group).version == 2

    # A failing deployment leaves production untouched.
    v4 = reg.register(group, str(gbm_package.path), {}, {"run_id": "r4"})
    reg.attach_evaluation(group, v4.version, report)
    reg.set_status(group, v4.version, ApprovalStatus.APPROVED, "ana")

    def broken(_):
        raise RuntimeError("endpoint update failed")

    with pytest.raises(RuntimeError):
        promote_if_better(reg, group, v4.version, broken)
    assert reg.production(group).version == 2
    assert "deployment failed" in reg.get(group, 4).promotion["reason"]


def rewrite_metrics(source: Path, target: Path, change):
    """A copy of a package whose metrics.json is change(metrics), its checksum kept valid."""
    import json
    import shutil

    from parking_core.forecasting.package import ModelPackage, file_sha256

    shutil.copytree(source, target)
    (target / "metrics.json").write_text(json.dumps(change(json.loads((target / "metrics.json").read_text()))))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"]["metrics.json"] = file_sha256(target / "metrics.json")
    (target / "manifest.json").write_text(json.dumps(manifest))
    return ModelPackage.load(target)


def test_promotion_floor_refuses_a_model_that_does_not_beat_the_baseline(gbm_package, readings, tmp_path):
    """Whatever production scored (here: nothing is in production), an approved candidate whose
    rolling-origin MAE is not below the weekly level-adjusted baseline's is refused, with why."""
    from parking_core.forecasting.package import ModelPackage
    from parking_core.mlops import evaluate_candidate, promote_if_better
    from parking_core.registry import ApprovalStatus
    from parking_core.registry.local import LocalModelRegistry

    # The same package, its metrics saying the folds did not beat the baseline.
    def losing_metrics(metrics):
        metrics["rolling_origin"].update(beats_weekly_level=False, mae=0.0331, weekly_level_mae=0.0320)
        return {**metrics, "beats_weekly_level": False}

    candidate = rewrite_metrics(gbm_package.path, tmp_path / "losing", losing_metrics)
    losing = candidate.path

    cube = readings_to_cube(readings, "Europe/London", 30, spec=candidate.grid)
    reg = LocalModelRegistry(tmp_path / "registry.sqlite3")
    deployed: list[int] = []
    report = evaluate_candidate(candidate, None, cube)
    assert report["beats_weekly_level"] is False and report["rolling_origin_mae"] == 0.0331
    v = reg.register("g", str(losing), {}, {"run_id": "r1"})
    reg.attach_evaluation("g", v.version, report)
    reg.set_status("g", v.version, ApprovalStatus.APPROVED, "ana")
    decision = promote_if_better(reg, "g", v.version, lambda ver: deployed.append(ver.version))
    assert not decision["promoted"] and deployed == [] and reg.production("g") is None
    reason = reg.get("g", v.version).promotion["reason"]
    assert "not better than the weekly level-adjusted baseline (0.0331 against 0.0320)" in reason
    assert ModelPackage.load(losing).below_floor

    # The real package passes the floor exactly when its folds say it beats the baseline.
    report = evaluate_candidate(gbm_package, None, cube)
    assert report["beats_weekly_level"] == gbm_package.metrics["beats_weekly_level"]

    # A package without any fold evidence proves nothing: refused, with why.
    bare = rewrite_metrics(gbm_package.path, tmp_path / "bare",
                           lambda m: {k: v for k, v in m.items() if k not in ("rolling_origin", "beats_weekly_level")})
    report = evaluate_candidate(bare, None, cube)
    assert "beats_weekly_level" not in report and bare.below_floor
    v = reg.register("g", str(bare.path), {}, {"run_id": "r2"})
    reg.attach_evaluation("g", v.version, report)
    reg.set_status("g", v.version, ApprovalStatus.APPROVED, "ana")
    assert not promote_if_better(reg, "g", v.version, lambda ver: deployed.append(ver.version))["promoted"]
    assert deployed == [] and "no rolling-origin evidence" in reg.get("g", v.version).promotion["reason"]


def test_a_network_package_is_judged_by_the_floor_on_its_holdout_block(tft_package, readings, tmp_path):
    """A network's validation block is its one time fold: the package records it as the floor's
    evidence (the same figures as its validation), and the evaluation carries it to promotion."""
    from parking_core.mlops import evaluate_candidate, promotion_decision

    rolling = tft_package.metrics["rolling_origin"]
    (fold,) = rolling["folds"]
    assert fold["role"] == "holdout" and fold["first_day"] == tft_package.metrics["validation_window"]["first_day"]
    assert rolling["mae"] == pytest.approx(tft_package.metrics["candidates"]["tft"]["val_intraday_mae"], abs=1e-6)
    assert rolling["weekly_level_mae"] == pytest.approx(
        tft_package.metrics["validation_baselines_mae"]["weekly_level"], abs=1e-6)
    assert rolling["beats_weekly_level"] == (rolling["mae"] < rolling["weekly_level_mae"])
    assert tft_package.metrics["beats_weekly_level"] == rolling["beats_weekly_level"]

    cube = readings_to_cube(readings, "Europe/London", 30, spec=tft_package.grid)
    report = evaluate_candidate(tft_package, None, cube)
    assert report["beats_weekly_level"] == rolling["beats_weekly_level"] and report["rolling_origin_folds"] == 1
    # Whichever way this tiny network's figure fell, the floor reads it both ways.
    for beats in (True, False):
        allowed, reason = promotion_decision({**report, "beats_weekly_level": beats})
        assert allowed is beats, reason
        if not beats:
            assert f"({rolling['mae']:.4f} against {rolling['weekly_level_mae']:.4f})" in reason


def test_gbm_inputs_never_see_the_future(readings):
    """Every input, used by the trees or not: rewrite the raw readings after 12:45 on a test day
    (and all later days); the inputs of origins before 13:00 are the same, bit for bit."""
    from parking_core.forecasting.correction_training import cube_design
    from parking_core.forecasting.features import Profile

    cut = pd.Timestamp("2016-11-28 12:45", tz="Europe/London")
    tampered = readings.copy()
    later = tampered["observed_at"] >= cut
    tampered.loc[later, "occupied"] = tampered.loc[later, "capacity"] - tampered.loc[later, "occupied"]
    designs = []
    for frame in (readings, tampered):
        cube = readings_to_cube(frame, "Europe/London", 30)
        profile = Profile.fit(cube.lots, cube.rate[:, :40], cube.days[:40])
        day = cube.day_index(date(2016, 11, 28))
        d, _, _, (_, _, slot) = cube_design(cube, len(cube.days), profile, set(), day, day, 8)
        designs.append((d, slot))
    (a, slot), (b, _) = designs
    early = slot < 10  # origins 08:00..12:30
    np.testing.assert_array_equal(a.x[early], b.x[early])
    np.testing.assert_array_equal(a.anchor[early], b.anchor[early])
    assert not np.array_equal(a.x[~early], b.x[~early])


def test_a_tampered_or_incomplete_package_is_refused_with_a_message(gbm_package, tmp_path):
    """Every file a package loads must be listed and checked; what onnxruntime cannot read is a
    message, not a traceback."""
    import json
    import shutil

    from parking_core.forecasting.package import ModelPackage

    def tampered(name, edit):
        path = tmp_path / name
        shutil.copytree(gbm_package.path, path)
        manifest = json.loads((path / "manifest.json").read_text())
        edit(path, manifest)
        (path / "manifest.json").write_text(json.dumps(manifest))
        return path

    no_files = tampered("no-files", lambda path, m: m.pop("files"))
    unlisted = tampered("unlisted", lambda path, m: (m["files"].pop("model.onnx"),
                                                     (path / "model.onnx").write_bytes(b"\0" * 1000)))
    escaping = tampered("escaping", lambda path, m: m["files"].update({"../x": "0" * 64}))
    for path, message in ((no_files, "lists no files"), (unlisted, "does not list model.onnx"),
                          (escaping, "not a plain file name")):
        with pytest.raises(ValueError, match=message):
            ModelPackage.load(path)
    broken = tampered("broken", lambda path, m: None)
    (broken / "model.onnx").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match="checksum mismatch"):
        ModelPackage.load(broken)
    with pytest.raises(ValueError, match="cannot be loaded by onnxruntime"):
        ModelPackage.load(broken, verify=False).forecaster()
    for text, message in (("[]", "holds a JSON list, not an object"), ("{", "manifest.json: not valid JSON")):
        (broken / "manifest.json").write_text(text)
        with pytest.raises(ValueError, match=message):
            ModelPackage.load(broken)
