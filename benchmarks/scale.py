"""How the costs grow with the number of car parks: synthetic lots with realistic weekly
patterns, 60 days each, through the same code paths the product runs.

    .venv/bin/python benchmarks/scale.py [--lots 30,100,300,1000] [--days 60]
                                         [--architecture gbm|tft] [--train-units 12]

Per size: store ingest (SQLiteStore.put_readings in batches of 100, validated Reading models;
the HTTP path is benchmarks/ingest.py), the daily export of one day (time and Parquet size),
the drift check (cubes for 21 reference + 7 new days, then the seasonal test), training for a
fixed budget (the shipped gbm through the pipeline's train step with 2 and --train-units
boosting iterations, or the TFT network cut at 2 and --train-units batches of one epoch: the
difference gives the time per unit, the rest the fixed cost; the full run is extrapolated as
fixed cost + time per unit x the units of a default run), peak RSS growth during training, one
forecast request for every lot at once through the ONNX package, and the SQLite file size.
Prints a table and the cost per car park.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parking_core.contracts import Lot, Reading  # noqa: E402
from parking_core.store.sqlite import SQLiteStore  # noqa: E402

ZONE = "Europe/London"
STEP = 30
FIRST_DAY = date(2024, 1, 8)  # a Monday
OPEN, CLOSE = 8 * 60, 16 * 60 + 30  # the Birmingham lots report 08:00-16:30 local
# Kinds of car park: (share, weekday peak, Saturday peak, Sunday peak, peak hour)
KINDS = {
    "commuter": (0.4, 0.85, 0.30, 0.15, 11.0),
    "shopping": (0.4, 0.60, 0.90, 0.55, 13.5),
    "leisure": (0.2, 0.45, 0.75, 0.70, 14.5),
}


def synthetic_frame(lots: int, days: int, seed: int = 14) -> pd.DataFrame:
    """Readings (lot_id, observed_at UTC, occupied, capacity) every 30 min in opening hours:
    a day shape per kind of car park, weekday/Saturday/Sunday levels, a slow trend, a few
    closed days, noise; all seeded."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(list(KINDS), size=lots, p=[k[0] for k in KINDS.values()])
    slots = np.arange(OPEN, CLOSE + 1, STEP)
    zone = ZoneInfo(ZONE)
    frames = []
    for i, kind in enumerate(kinds):
        _, weekday, saturday, sunday, peak_hour = KINDS[kind]
        capacity = int(rng.integers(60, 2500))
        width = rng.uniform(2.0, 3.5) * 60
        shape = np.exp(-0.5 * ((slots - peak_hour * 60 - rng.normal(0, 30)) / width) ** 2)
        level = rng.uniform(0.8, 1.1)
        trend = rng.normal(0, 0.002)
        rows_t, rows_o = [], []
        for d in range(days):
            day = FIRST_DAY + timedelta(days=d)
            if rng.random() < 0.01:  # a day the sensor was down
                continue
            peak = (weekday, weekday, weekday, weekday, weekday * 1.05, saturday, sunday)[day.weekday()]
            rate = np.clip(shape * peak * level * (1 + trend * d) + rng.normal(0, 0.03, len(slots)), 0, 1.04)
            base = datetime(day.year, day.month, day.day, tzinfo=zone)
            rows_t.extend((base + timedelta(minutes=int(m))).astimezone(UTC) for m in slots)
            rows_o.extend(np.rint(rate * capacity).astype(int))
        frames.append(pd.DataFrame({"lot_id": f"SYN-{i:05d}", "observed_at": rows_t, "occupied": rows_o,
                                    "capacity": capacity}))
    return pd.concat(frames, ignore_index=True)


class PeakRss:
    """Peak resident memory of this process while the block runs, above what it held before."""

    def __enter__(self) -> PeakRss:
        self.proc = psutil.Process()
        self.before = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def grown_mib(self) -> float:
        return (self.peak - self.before) / 2**20


@dataclass
class Row:
    lots: int
    readings: int
    ingest_s: float
    export_s: float
    export_kib: float
    drift_s: float
    train_unit_s: float  # per boosting iteration (gbm) or per batch (tft)
    train_units: int  # of those in a full run
    train_budget_s: float
    train_full_s: float
    train_mib: float
    forecast_s: float
    sqlite_mib: float


def train_gbm(frame: pd.DataFrame, iterations: int, out: Path):
    """The shipped forecaster, as the pipeline's train step runs it (rolling-origin folds, the
    final fit, the backtest and the package). Two short budgets of boosting iterations: their
    difference is the time per iteration (across every fold's fit), the rest is the fixed cost
    (grid, designs, backtest, export); the full run is fixed + per iteration x the default."""
    from parking_core.forecasting.training import TrainConfig
    from parking_core.forecasting.workflows import train_package

    def run(n: int):
        cfg = TrainConfig(gbm_iterations=n)
        start = time.perf_counter()
        package, _ = train_package(frame, ZONE, STEP, out, cfg, progress=False)
        return time.perf_counter() - start, package

    short, _ = run(2)
    budget, package = run(iterations)
    per_iteration = max(0.0, (budget - short) / (iterations - 2))
    full_iterations = TrainConfig().gbm_iterations
    return per_iteration, full_iterations, budget, short - 2 * per_iteration + per_iteration * full_iterations, package


def train_tft(frame: pd.DataFrame, batches: int, out: Path):
    """The network option: one epoch cut at 2 and at `batches` batches; the full run is the fixed
    cost + time per batch x batches per epoch x the 15-epoch cap (an upper bound)."""
    from parking_core.forecasting.export import write_package
    from parking_core.forecasting.grid import readings_to_cube
    from parking_core.forecasting.package import ModelPackage
    from parking_core.forecasting.training import TrainConfig, train

    cube = readings_to_cube(frame, ZONE, STEP)
    # Warm-up (imports, kernels, allocator); untimed, as a daily run pays it once per process.
    train(cube, TrainConfig(architectures=("tft",), max_epochs=1, limit_train_batches=1, refit=False), progress=False)
    budgets = {}
    for n in (2, batches):
        cfg = TrainConfig(architectures=("tft",), max_epochs=1, limit_train_batches=n, refit=False)
        start = time.perf_counter()
        result = train(cube, cfg, progress=False)
        budgets[n] = time.perf_counter() - start
    per_batch = max(0.0, (budgets[batches] - budgets[2]) / (batches - 2))
    units = _batches_per_epoch(cube, cfg) * TrainConfig().max_epochs
    write_package(result, cube, out)
    return per_batch, units, budgets[batches], budgets[2] - 2 * per_batch + per_batch * units, ModelPackage.load(out)


TRAINERS = {"gbm": train_gbm, "tft": train_tft}


def measure(lots: int, days: int, architecture: str, train_units: int, tmp: Path) -> Row:
    from parking_core.drift import detect_drift
    from parking_core.export import export_day
    from parking_core.forecasting.grid import readings_to_cube
    from parking_core.forecasting.serve import History, forecasts_from_histories
    from parking_core.objectstore import ObjectStore

    frame = synthetic_frame(lots, days)
    store = SQLiteStore(tmp / "parkcast.sqlite3")
    for lot_id, capacity in frame.groupby("lot_id")["capacity"].max().items():
        store.put_lot(Lot(lot_id=lot_id, name=lot_id, capacity=int(capacity), timezone=ZONE))
    records = frame.to_dict("records")
    start = time.perf_counter()
    for i in range(0, len(records), 100):
        store.put_readings([Reading(lot_id=r["lot_id"], device_id="cam", observed_at=r["observed_at"],
                                    capacity=int(r["capacity"]), occupied=int(r["occupied"]))
                            for r in records[i:i + 100]])
    ingest_s = time.perf_counter() - start

    objects = ObjectStore((tmp / "objects").as_uri())
    last_day = FIRST_DAY + timedelta(days=days - 1)
    start = time.perf_counter()
    export_day(store, objects, last_day)
    export_s = time.perf_counter() - start
    export_kib = sum(p.stat().st_size for p in (tmp / "objects").rglob("*") if p.is_file()) / 1024

    local_day = frame["observed_at"].dt.tz_convert(ZONE).dt.date

    def drift() -> None:
        reference = readings_to_cube(frame[(local_day >= last_day - timedelta(days=27)) &
                                           (local_day < last_day - timedelta(days=6))], ZONE, STEP)
        new = readings_to_cube(frame[local_day >= last_day - timedelta(days=6)], ZONE, STEP, spec=reference.spec)
        detect_drift(reference, new)

    drift()  # the first call pays for imports and compilation, which a daily run pays once too
    start = time.perf_counter()
    drift()
    drift_s = time.perf_counter() - start

    with PeakRss() as rss:
        train_unit_s, units_full, train_budget_s, train_full_s, package = TRAINERS[architecture](
            frame, train_units, tmp / "package")
    forecaster = package.forecaster()
    at = datetime(last_day.year, last_day.month, last_day.day, 12, 0, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    histories = [(store.get_lot(lot_id), History.of_frame(group[group["observed_at"] <= at]), at)
                 for lot_id, group in frame[frame["observed_at"] > at - timedelta(days=9)].groupby("lot_id")]
    start = time.perf_counter()
    forecasts = forecasts_from_histories(histories, package, forecaster)
    forecast_s = time.perf_counter() - start
    assert len(forecasts) == lots
    store.close()
    sqlite_mib = sum(p.stat().st_size for p in tmp.glob("parkcast.sqlite3*")) / 2**20
    return Row(lots, len(frame), ingest_s, export_s, export_kib, drift_s, train_unit_s, units_full,
               train_budget_s, train_full_s, rss.grown_mib, forecast_s, sqlite_mib)


def _batches_per_epoch(cube, cfg) -> int:
    """Training windows per epoch / batch size: one window per lot, day and origin slot with a
    full horizon ahead (what the dataset builder yields for a dense cube)."""
    lots, days, slots = cube.rate.shape
    windows = lots * max(0, days - cfg.val_days - cfg.encoder_days) * max(1, slots - cfg.horizon)
    return max(1, math.ceil(windows / cfg.batch_size))


def _full_s(r: Row) -> str:
    # The two budgets can differ by less than the noise of a busy machine: then no estimate.
    return f"{r.train_full_s:.0f}" if r.train_unit_s > 0 else "n/a"


def main() -> None:
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lots", default="30,100,300,1000")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--architecture", choices=sorted(TRAINERS), default="gbm",
                    help="gbm: the shipped forecaster (default); tft: the pytorch-forecasting network")
    ap.add_argument("--train-units", type=int, default=12,
                    help="the longer of the two training budgets: boosting iterations (gbm) or batches (tft)")
    args = ap.parse_args()
    from benchmarks.ingest import machine

    rows = []
    for n in (int(x) for x in args.lots.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(n, args.days, args.architecture, args.train_units, Path(tmp)))
        r = rows[-1]
        print(f"done {n} lots: {r}", flush=True)

    print(f"\nparkcast scale benchmark: {args.days} days per car park, 30-min readings 08:00-16:30, "
          f"training {args.architecture} (unit: {'boosting iteration' if args.architecture == 'gbm' else 'batch'})")
    print(f"machine: {machine()}")
    head = (f"{'lots':>5} {'readings':>9} {'ingest/s':>9} {'export s':>8} {'export KiB':>10} {'drift s':>7} "
            f"{'unit s':>7} {'units':>10} {'train full s':>12} {'train MiB':>9} {'forecast s':>10} "
            f"{'SQLite MiB':>10}")
    print(head)
    for r in rows:
        print(f"{r.lots:>5} {r.readings:>9} {r.readings / r.ingest_s:>9,.0f} {r.export_s:>8.3f} {r.export_kib:>10.0f} "
              f"{r.drift_s:>7.2f} {r.train_unit_s:>7.3f} {r.train_units:>10} {_full_s(r):>12} "
              f"{r.train_mib:>9.0f} {r.forecast_s:>10.3f} {r.sqlite_mib:>10.1f}")
    print("\nper car park (ms, except KiB):")
    print(f"{'lots':>5} {'ingest':>8} {'export':>8} {'export KiB':>10} {'drift':>8} {'train budg':>10} {'forecast':>8}")
    for r in rows:
        n = r.lots
        print(f"{n:>5} {1000 * r.ingest_s / n:>8.1f} {1000 * r.export_s / n:>8.2f} {r.export_kib / n:>10.2f} "
              f"{1000 * r.drift_s / n:>8.2f} {1000 * r.train_budget_s / n:>10.0f} {1000 * r.forecast_s / n:>8.2f}")


if __name__ == "__main__":
    main()
