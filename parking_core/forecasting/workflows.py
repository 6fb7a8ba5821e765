"""End-to-end forecasting workflows behind the CLI, the Dagster assets and the SageMaker
training script: readings -> grid -> train -> package, and CSV -> backtest."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from parking_core.forecasting.backtest import BacktestResult, run_backtest
from parking_core.forecasting.features import training_holidays
from parking_core.forecasting.grid import Cube, readings_to_cube
from parking_core.forecasting.package import ModelPackage
from parking_core.forecasting.training import TrainConfig

log = logging.getLogger("parkcast.forecasting")


def train_package(
    readings: pd.DataFrame,
    timezone: str,
    step_minutes: int,
    out_dir: Path,
    cfg: TrainConfig | None = None,
    progress: bool = True,
) -> tuple[ModelPackage, Cube]:
    """Train on every reading given and write the package to out_dir."""
    cfg = cfg or TrainConfig()
    cube = readings_to_cube(readings, timezone, step_minutes)
    if "gbm" in cfg.architectures:
        if len(cfg.architectures) > 1:
            raise ValueError("gbm trains on its own; the networks (tft, nhits) are a separate choice")
        from parking_core.forecasting import correction_training as ct

        if cfg.horizon > cube.spec.slots_per_day:
            raise ValueError(f"horizon {cfg.horizon} is longer than a day of open slots ({cube.spec.slots_per_day})")
        holidays = training_holidays(cube.days, cfg.holiday_country, cfg.holiday_subdiv, timezone)
        result = ct.train_correction(cube, holidays, cfg.horizon, cfg.folds,
                                     ct.GbmConfig(iterations=cfg.gbm_iterations, half_life_days=cfg.half_life_days,
                                                  seed=cfg.seed), progress=progress)
        ct.write_package(result, cube, out_dir, timezone, cfg.to_dict())
        return ModelPackage.load(out_dir), cube
    from parking_core.forecasting.export import write_package
    from parking_core.forecasting.training import train

    result = train(cube, cfg, progress=progress)
    write_package(result, cube, out_dir)
    return ModelPackage.load(out_dir), cube


@dataclass
class BacktestReport:
    result: BacktestResult
    package: ModelPackage
    train_cube: Cube

    def table(self) -> str:
        frame = self.result.mae_by_horizon()
        lines = [f"{'horizon':>7} {'model':>8} {'persist':>8} {'weekly':>8} {'wk+lvl':>8} {'n':>6}"]
        for h, row in frame.iterrows():
            lines.append(
                f"{h!s:>7} {row['model']:>8.4f} {row['persistence']:>8.4f} {row['weekly_naive']:>8.4f} "
                f"{row['weekly_level']:>8.4f} {int(row['n']):>6}"
            )
        s = self.result.summary()
        lines.append(
            f"model {self.package.manifest['architecture']} ({self.package.version}); best baseline "
            f"{s['best_baseline']}; improvement {s['improvement_vs_best_baseline']:+.1%}; "
            f"P10-P90 coverage {s['coverage_p10_p90']:.1%}"
        )
        rolling = self.package.metrics.get("rolling_origin")
        if rolling and rolling.get("folds"):
            from parking_core.forecasting.correction_training import fold_table

            lines += ["", "rolling-origin folds at the end of TRAIN (each trained only on the days before it):",
                      fold_table(rolling["folds"])]
            if self.package.below_floor:
                lines.append("the model does not beat the weekly level-adjusted baseline on the folds: "
                             "promotion would refuse it")
        return "\n".join(lines)


def backtest(
    train: pd.DataFrame,
    test: pd.DataFrame,
    timezone: str,
    step_minutes: int,
    horizon: int,
    cfg: TrainConfig | None = None,
    package_dir: Path | None = None,
    progress: bool = True,
) -> BacktestReport:
    """Fit on `train` only, then walk through `test` with the packaged (ONNX) model."""
    cfg = cfg or TrainConfig()
    cfg.horizon = horizon
    if test.empty:
        raise ValueError("the test file has no usable readings")
    # The test walk must never see training rows dated inside the test window: the training
    # data (its profile, capacities, folds) would then know the test period.
    first_test_day = _local_first_day(test, timezone)
    last_train_day = _local_last_day(train, timezone)
    if last_train_day >= first_test_day:
        raise ValueError(f"the training data runs to {last_train_day}, into the test period that starts on "
                         f"{first_test_day}: give readings before the test only")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(package_dir or tmp) / "model"
        package, train_cube = train_package(train, timezone, step_minutes, out, cfg, progress)
        forecaster = package.forecaster(threads=cfg.threads)
        lots = sorted(set(train_cube.lots) | set(test["lot_id"]))
        # Capacity is what the lot declared before the test: the training readings' maximum, and
        # for a lot first seen in the test, its first reading's (known at that time).
        capacity = train.groupby("lot_id")["capacity"].max().to_dict()
        first_seen = test.sort_values("observed_at").groupby("lot_id")["capacity"].first().to_dict()
        capacity.update({lot: cap for lot, cap in first_seen.items() if lot not in capacity})
        cube = readings_to_cube(
            pd.concat([train, test], ignore_index=True), timezone, step_minutes, spec=train_cube.spec, lots=lots,
            capacity=capacity,
        )
        result = run_backtest(cube, first_test_day, horizon, forecaster, progress=progress)
        if package_dir is None:
            package = ModelPackage(Path("(temporary)"), package.manifest, package.preprocessing, package.metrics)
    return BacktestReport(result, package, train_cube)


def _local_first_day(frame: pd.DataFrame, timezone: str) -> date:
    local = pd.to_datetime(frame["observed_at"], utc=True).dt.tz_convert(timezone)
    return local.min().date()


def _local_last_day(frame: pd.DataFrame, timezone: str) -> date:
    local = pd.to_datetime(frame["observed_at"], utc=True).dt.tz_convert(timezone)
    return local.max().date()


def parse_local(value: str, timezone: str) -> datetime:
    from zoneinfo import ZoneInfo

    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(timezone))
