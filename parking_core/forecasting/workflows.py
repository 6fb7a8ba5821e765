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
    from parking_core.forecasting.export import write_package
    from parking_core.forecasting.training import train

    cube = readings_to_cube(readings, timezone, step_minutes)
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
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(package_dir or tmp) / "model"
        package, train_cube = train_package(train, timezone, step_minutes, out, cfg, progress)
        forecaster = package.forecaster(threads=cfg.threads)
        first_test_day = _local_first_day(test, timezone)
        lots = sorted(set(train_cube.lots) | set(test["lot_id"]))
        capacity = pd.concat([train, test]).groupby("lot_id")["capacity"].max().to_dict()
        cube = readings_to_cube(
            pd.concat([train, test], ignore_index=True), timezone, step_minutes, spec=train_cube.spec, lots=lots,
            capacity=capacity,
        )
        # The test walk must never see train rows dated inside the test window, nor vice versa.
        result = run_backtest(cube, first_test_day, horizon, forecaster, progress=progress)
        if package_dir is None:
            package = ModelPackage(Path("(temporary)"), package.manifest, package.preprocessing, package.metrics)
    return BacktestReport(result, package, train_cube)


def _local_first_day(frame: pd.DataFrame, timezone: str) -> date:
    local = pd.to_datetime(frame["observed_at"], utc=True).dt.tz_convert(timezone)
    return local.min().date()


def parse_local(value: str, timezone: str) -> datetime:
    from zoneinfo import ZoneInfo

    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(timezone))
