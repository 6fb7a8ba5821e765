"""Forecaster benchmark on the sample data: accuracy against the baselines, training time,
ONNX latency for all lots at one origin, artifact size.

    .venv/bin/python benchmarks/forecast.py [--split 2016-11-20] [--architectures tft,nhits]

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

from parking_core.csv_import import BIRMINGHAM, read_frame  # noqa: E402
from parking_core.forecasting.training import TrainConfig  # noqa: E402
from parking_core.forecasting.windows import request_at  # noqa: E402
from parking_core.forecasting.workflows import backtest  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="2016-11-20", help="last training day (local)")
    ap.add_argument("--architectures", default="tft,nhits")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep the package here")
    args = ap.parse_args()

    frame, _ = read_frame(SAMPLE, BIRMINGHAM, "Europe/London")
    cut = pd.Timestamp(args.split, tz="Europe/London") + pd.Timedelta(days=1)
    train, test = frame[frame["observed_at"] < cut], frame[frame["observed_at"] >= cut]
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

        # Latency: every lot at one origin (16 Nov 12:00 local), features + ONNX, one batch.
        forecaster = package.forecaster(threads=1)
        cube = report.train_cube
        day = len(cube.days) - 1
        requests = [
            request_at(lot, float(cube.capacity[i]), cube.days, cube.rate[i], day, 8, 8)
            for i, lot in enumerate(cube.lots)
        ]
        for _ in range(5):
            forecaster.predict(requests)
        timings = []
        for _ in range(50):
            t = time.perf_counter()
            forecaster.predict(requests)
            timings.append((time.perf_counter() - t) * 1000)

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
        (f"ONNX forecast, {len(requests)} lots at one origin p50 (ms)", f"{statistics.median(timings):.1f}"),
        (f"ONNX forecast, {len(requests)} lots at one origin p99 (ms)",
         f"{statistics.quantiles(timings, n=100)[98]:.1f}"),
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
