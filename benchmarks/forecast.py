"""Forecaster benchmark on the sample data: accuracy against the baselines, training time,
latency for all lots at one origin, artifact size.

    .venv/bin/python benchmarks/forecast.py [--split 2016-11-20] [--architectures tft,nhits]
    .venv/bin/python benchmarks/forecast.py --latency-only --model DIR   # latency of a package, no training

Latency is timed twice: the network alone on prebuilt requests (ONNX), and the path the endpoint
runs per call: raw readings (35 days per lot) -> time grid -> features -> ONNX -> forecasts.

Train: readings up to and including --split; test: the rest (2016-11-21..2016-12-05).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parking_core.contracts import Lot  # noqa: E402
from parking_core.csv_import import BIRMINGHAM, read_frame  # noqa: E402
from parking_core.forecasting.grid import readings_to_cube  # noqa: E402
from parking_core.forecasting.invocation import HISTORY_DAYS  # noqa: E402
from parking_core.forecasting.package import ModelPackage  # noqa: E402
from parking_core.forecasting.serve import History, forecasts_from_histories  # noqa: E402
from parking_core.forecasting.training import TrainConfig  # noqa: E402
from parking_core.forecasting.windows import request_at  # noqa: E402
from parking_core.forecasting.workflows import backtest  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"
TIMEZONE = "Europe/London"


def timed(call, repeats: int = 50) -> list[float]:
    for _ in range(5):
        call()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        out.append((time.perf_counter() - t) * 1000)
    return out


def from_readings_ms(package: ModelPackage, train: pd.DataFrame) -> tuple[int, list[float]]:
    """Every lot at the last training reading, from raw readings as the endpoint gets them."""
    at = train["observed_at"].max().to_pydatetime()
    recent = train[train["observed_at"] >= train["observed_at"].max() - pd.Timedelta(days=HISTORY_DAYS + 1)]
    items = [(Lot(lot_id=lot, name=lot, capacity=int(rows["capacity"].max()), timezone=TIMEZONE),
              History.of_frame(rows.sort_values("observed_at")), at) for lot, rows in recent.groupby("lot_id")]
    forecaster = package.forecaster(threads=1)
    return len(items), timed(lambda: forecasts_from_histories(items, package, forecaster))


def onnx_alone_ms(package: ModelPackage, cube) -> tuple[int, list[float]]:
    """Every lot at the cube's last day, 12:00 local, requests prebuilt: the network alone."""
    forecaster = package.forecaster(threads=1)
    day = len(cube.days) - 1
    requests = [request_at(lot, float(cube.capacity[i]), cube.days, cube.rate[i], day, 8, 8)
                for i, lot in enumerate(cube.lots)]
    return len(requests), timed(lambda: forecaster.predict(requests))


def p50_p99(ms: list[float]) -> str:
    return f"{statistics.median(ms):.1f} / {statistics.quantiles(ms, n=100)[98]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="2016-11-20", help="last training day (local)")
    ap.add_argument("--architectures", default="tft,nhits")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep the package here")
    ap.add_argument("--model", type=Path, default=None, help="with --latency-only: the package to time")
    ap.add_argument("--latency-only", action="store_true")
    args = ap.parse_args()

    frame, _ = read_frame(SAMPLE, BIRMINGHAM, TIMEZONE)
    cut = pd.Timestamp(args.split, tz=TIMEZONE) + pd.Timedelta(days=1)
    train, test = frame[frame["observed_at"] < cut], frame[frame["observed_at"] >= cut]
    if args.latency_only:
        if not args.model:
            raise SystemExit("--latency-only needs --model DIR")
        package = ModelPackage.load(args.model)
        n, onnx_ms = onnx_alone_ms(package, readings_to_cube(train, TIMEZONE, 30))
        _, served_ms = from_readings_ms(package, train)
        print(f"\n{n} lots at one origin, 1 thread, p50 / p99 (ms): ONNX alone {p50_p99(onnx_ms)}; "
              f"readings -> grid -> features -> ONNX -> forecasts {p50_p99(served_ms)}")
        return
    cfg = TrainConfig(architectures=tuple(args.architectures.split(",")))
    if args.max_epochs:
        cfg.max_epochs = args.max_epochs

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        report = backtest(train, test, "Europe/London", 30, 8, cfg, package_dir=args.keep or Path(tmp), progress=True)
        total = time.monotonic() - started
        package = report.package
        size = sum(p.stat().st_size for p in package.path.iterdir())
        onnx_size = (package.path / "model.onnx").stat().st_size

        n_lots, onnx_ms = onnx_alone_ms(package, report.train_cube)
        _, served_ms = from_readings_ms(package, train)

    summary = report.result.summary()
    candidates = package.metrics["candidates"]
    print(f"\nparkcast forecaster benchmark (sample data, train <= {args.split}, test after)")
    print(report.table())
    print(f"\n{'candidate':<10} {'val MAE':>8} {'epochs':>7} {'train s':>8}")
    for arch, m in candidates.items():
        print(f"{arch:<10} {m['val_intraday_mae']:>8.4f} {m['epochs']:>7} {m['train_seconds']:>8.1f}")
    print(f"\n{'figure':<44} {'value':>12}")
    rows = [
        ("training + backtest wall time (s)", f"{total:.0f}"),
        ("training wall time, all candidates (s)", f"{sum(m['train_seconds'] for m in candidates.values()):.0f}"),
        (f"ONNX alone, {n_lots} lots, p50 / p99 (ms)", p50_p99(onnx_ms)),
        (f"readings -> grid -> ONNX, {n_lots} lots, p50 / p99 (ms)", p50_p99(served_ms)),
        ("model.onnx size (KB)", f"{onnx_size / 1024:.0f}"),
        ("whole package size (KB)", f"{size / 1024:.0f}"),
        ("torch vs ONNX max abs diff", f"{package.metrics['onnx_max_abs_diff']:.1e}"),
        ("model MAE h1-8 (intra-day)", f"{summary['mae']['model']:.4f}"),
        ("weekly level-adjusted MAE", f"{summary['mae']['weekly_level']:.4f}"),
        ("improvement vs best baseline", f"{summary['improvement_vs_best_baseline']:.1%}"),
        ("P10-P90 coverage", f"{summary['coverage_p10_p90']:.1%}"),
    ]
    for name, value in rows:
        print(f"{name:<44} {value:>12}")


if __name__ == "__main__":
    main()
