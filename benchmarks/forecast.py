"""Forecaster benchmark: rolling-origin folds on the sample data, the shipped model against the
baselines, a linear model and the trees without the blend; wall times of the user's paths;
serving latency for one lot; training time against lots x days on synthetic 24-hour car parks.

    .venv/bin/python benchmarks/forecast.py [--only folds|paths|scaling]
    .venv/bin/python benchmarks/forecast.py --only networks [--arch nhits|tft] [--fold K] [--seed S]... [--cached-only]

`--only networks` trains the pytorch-forecasting network on the same folds (each only on the days
before it, through the same `training.train` as `parkcast train --architectures nhits`), caches
each fold's forecasts, and scores it alone and in a per-horizon blend with the anchor and the
shipped trees (weights learned exactly as the shipped blend learns its own). `--fold K` trains
that fold only (to run the folds in separate commands); without it, missing folds are trained
(`--cached-only`: none). A second `--seed` is read from the cache to state the seed noise.

Protocol: the last 4 weeks of the sample (2016-11-08..12-05) are 4 folds of one week; each
fold's models are trained only on the days before it. The first 3 ("choice") folds are the
only data any choice saw (the blend weight per horizon, the conformal band, the loss and tree settings, the inputs);
each is reported with the blend learned on the other two. The final fold (11-29..12-05) is
reported with choices from the 3 choice folds and used for nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parking_core.csv_import import BIRMINGHAM, read_frame  # noqa: E402
from parking_core.forecasting import correction_training as ct  # noqa: E402
from parking_core.forecasting.features import Profile, holiday_dates  # noqa: E402
from parking_core.forecasting.grid import readings_to_cube  # noqa: E402
from parking_core.forecasting.training import TrainConfig  # noqa: E402
from parking_core.forecasting.workflows import backtest, train_package  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"
TZ = "Europe/London"
HORIZON = 8


def ridge_fold_scores(cube, holidays, runs: list[ct.FoldRun], alpha: float = 10.0) -> list[dict]:
    """The comparison the issue asks for: a linear model (ridge per horizon) on the same inputs
    (lagged values, level gaps, calendar), same folds, same blend-free use, conformal band from
    the other choice folds' residuals."""
    out = []
    for run in runs:
        profile = Profile.fit(cube.lots, cube.rate[:, : run.first], cube.days[: run.first])
        d, actual, mask, _ = ct.cube_design(cube, run.first, profile, holidays, 0, run.first - 1, run.actual.shape[1])
        correction = np.zeros_like(run.actual)
        for h in range(run.actual.shape[1]):
            rows = mask[:, h]
            x, y = d.x[rows, h].astype(float), (actual - d.anchor)[rows, h].astype(float)
            mean, std = x.mean(0), x.std(0) + 1e-9
            z = (x - mean) / std
            beta = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
            correction[:, h] = ((run.design.x[:, h] - mean) / std) @ beta + y.mean()
        linear = ct.FoldRun(run.first, run.last, run.role, run.design, run.actual, run.mask, correction,
                            run.baselines)
        out.append(linear)
    return out


def scored(runs: list[ct.FoldRun], cube, blend_from_choice: bool) -> list[dict]:
    """Each choice fold with the blend of the other choice folds; the final with all of them.
    Without blending: the correction at full weight, band from the other folds."""
    learn = ct.learn_blend if blend_from_choice else full_weight
    return [s.to_dict() for s in ct.score_runs(runs, cube, learn)]


def full_weight(others: list[ct.FoldRun]) -> ct.Blend:
    """The correction at full weight, with the conformal band of the residuals on `others`."""
    horizon = others[0].actual.shape[1]
    full = ct.Blend(np.ones(horizon, np.float32), np.zeros((horizon, 2), np.float32))
    resid = [np.nan_to_num(c.actual - full.quantiles(c.design, c.correction)[..., 1]) for c in others]
    full.offsets = ct.conformal_offsets(np.concatenate(resid), np.concatenate([c.mask for c in others]))
    return full


def fold_summary(name: str, folds: list[dict]) -> str:
    choice = [f for f in folds if f["role"] == "choice"]
    final = [f for f in folds if f["role"] == "final"]
    gains = [f["improvement_vs_weekly_level"] for f in choice]
    cover = [f["coverage_p10_p90"] for f in choice]
    line = (f"{name:<26} {np.mean([f['mae']['model'] for f in choice]):>8.4f} {np.mean(gains):>+8.1%} "
            f"{np.std(gains, ddof=1):>6.1%} {min(gains):>+7.1%} {min(cover):>6.1%}-{max(cover):<6.1%} ")
    if not final:
        return line + f"{'(final fold not run)':>24}"
    return line + (f"{final[0]['mae']['model']:>8.4f} {final[0]['improvement_vs_weekly_level']:>+7.1%} "
                   f"{final[0]['coverage_p10_p90']:>7.1%}")


def sample_cube():
    frame, _ = read_frame(SAMPLE, BIRMINGHAM, TZ)
    return readings_to_cube(frame, TZ, 30), holiday_dates("GB", "ENG", range(2015, 2018))


def fold_bounds(cube) -> list[tuple[int, int, str]]:
    """(first day, last day, role) of the 4 folds: 3 choice folds, then the final one."""
    starts = ct.fold_starts(len(cube.days), 4)
    return [(s, s + ct.FOLD_DAYS - 1, "final" if k == len(starts) - 1 else "choice") for k, s in enumerate(starts)]


def gbm_fold_runs(cube, holidays) -> list[ct.FoldRun]:
    cfg = ct.GbmConfig()
    return [ct.run_fold(cube, first, last, role, holidays, HORIZON, cfg) for first, last, role in fold_bounds(cube)]


def accuracy() -> None:
    cube, holidays = sample_cube()
    started = time.monotonic()
    runs = gbm_fold_runs(cube, holidays)
    fold_seconds = time.monotonic() - started
    shipped = scored(runs, cube, blend_from_choice=True)
    trees = scored(runs, cube, blend_from_choice=False)
    linear = scored(ridge_fold_scores(cube, holidays, runs), cube, blend_from_choice=False)
    print("\nRolling-origin folds, Birmingham sample (29 car parks, 08:00-16:30, h = 1..8 same day)")
    print("shipped model: gbm correction, per-horizon blend with the anchor, conformal P10-P90")
    print(ct.fold_table(shipped))
    print("\ntrees at full weight (no blend):")
    print(ct.fold_table(trees))
    print("\nlinear (ridge per horizon, same inputs):")
    print(ct.fold_table(linear))
    print(f"\n{'model':<26} {'MAE':>8} {'gain':>8} {'sd':>6} {'worst':>7} {'P10-P90':>13} {'final':>8} "
          f"{'gain':>7} {'cover':>7}")
    print(f"{'':<26} {'(choice folds: mean, sd, worst fold, coverage range)':<52} {'(final fold)'}")
    print(fold_summary("gbm + blend (shipped)", shipped))
    print(fold_summary("gbm, no blend", trees))
    print(fold_summary("linear (ridge)", linear))
    for name in ("weekly_level", "persistence", "weekly_naive"):
        choice = [f["mae"][name] for f in shipped if f["role"] == "choice"]
        final = [f["mae"][name] for f in shipped if f["role"] == "final"][0]
        print(f"{name:<26} {np.mean(choice):>8.4f} {'':>38} {final:>8.4f}")
    print(f"(4 folds trained and forecast in {fold_seconds:.0f} s; the trees are deterministic, so seeds "
          f"change nothing: one run)")


def user_paths() -> None:
    frame, _ = read_frame(SAMPLE, BIRMINGHAM, TZ)
    cut = pd.Timestamp("2016-11-21", tz=TZ)
    train, test = frame[frame["observed_at"] < cut], frame[frame["observed_at"] >= cut]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        report = backtest(train, test, TZ, 30, 8, TrainConfig(), package_dir=Path(tmp), progress=False)
        split_seconds = time.monotonic() - started
        started = time.monotonic()
        package, _ = train_package(frame, TZ, 30, Path(tmp) / "full", TrainConfig(), progress=False)
        full_seconds = time.monotonic() - started
        latency = serving_latency(package, frame)
        onnx_kb = (package.path / "model.onnx").stat().st_size / 1024
    s = report.result.summary()
    print("\nUser paths (2 cores shared with other work)")
    print(f"{'figure':<64} {'value':>10}")
    for name, value in [
        ("parkcast backtest, train <= 11-20 (2 folds) + walk 11-21..12-05 (s)", f"{split_seconds:.0f}"),
        ("  its MAE h1-8 / weekly level-adjusted", f"{s['mae']['model']:.4f} / {s['mae']['weekly_level']:.4f}"),
        ("  its gain / P10-P90 coverage", f"{s['improvement_vs_best_baseline']:+.1%} / {s['coverage_p10_p90']:.1%}"),
        ("parkcast train on the whole sample (4 folds + final fit + package) (s)", f"{full_seconds:.0f}"),
        ("forecast one lot incl. 35-day grid build, p50 (ms)", f"{latency[0]:.1f}"),
        ("forecast one lot incl. 35-day grid build, p99 (ms)", f"{latency[1]:.1f}"),
        ("model.onnx size (KB)", f"{onnx_kb:.0f}"),
        ("trees vs ONNX max abs diff", f"{package.metrics['onnx_max_abs_diff']:.1e}"),
    ]:
        print(f"{name:<64} {value:>10}")


def serving_latency(package, frame) -> tuple[float, float]:
    from parking_core.contracts import Lot
    from parking_core.forecasting.serve import History, forecasts_from_histories

    forecaster = package.forecaster(threads=1)
    lot = Lot(lot_id="Shopping", name="Shopping", capacity=1920, timezone=TZ)
    at = datetime(2016, 12, 5, 12, 10, tzinfo=UTC)
    rows = frame[(frame["lot_id"] == "Shopping") & (frame["observed_at"] <= at)
                 & (frame["observed_at"] > at - timedelta(days=36))]
    history = History.of_frame(rows)
    timings = []
    for i in range(60):
        t = time.perf_counter()
        forecasts_from_histories([(lot, history, at)], package, forecaster)
        if i >= 10:
            timings.append((time.perf_counter() - t) * 1000)
    return statistics.median(timings), statistics.quantiles(timings, n=100)[98]


def synthetic_24h(lots: int, days: int, seed: int = 0) -> pd.DataFrame:
    """Stand-in for another city's 24-hour car parks (no such data set is in this repository):
    readings every 30 min, a daily and weekly shape per lot, a slow level drift, noise, a few
    missing hours."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-02", tz="UTC")
    times = start + pd.to_timedelta(np.arange(days * 48) * 30, unit="min")
    hour = (times.hour + times.minute / 60).to_numpy()
    dow = times.dayofweek.to_numpy()
    parts = []
    for lot in range(lots):
        capacity = int(rng.integers(150, 900))
        peak = rng.uniform(11, 15)
        weekend = rng.uniform(0.5, 1.3)
        daily = 0.15 + 0.6 * np.exp(-((hour - peak) / rng.uniform(2.5, 4.5)) ** 2)
        level = 1 + np.cumsum(rng.normal(0, 0.002, len(times)))
        rate = daily * np.where(dow >= 5, weekend, 1.0) * level + rng.normal(0, 0.03, len(times))
        keep = rng.random(len(times)) > 0.02
        occupied = np.clip(np.round(rate * capacity), 0, capacity).astype(int)
        parts.append(pd.DataFrame({"lot_id": f"L{lot:02d}", "observed_at": times[keep], "occupied": occupied[keep],
                                   "capacity": capacity}))
    return pd.concat(parts, ignore_index=True)


def scaling() -> None:
    print("\nTraining time against lots x days (synthetic 24-hour car parks, 48 slots a day; train = 4 folds "
          "+ final fit + package; backtest = walk of the 14 days after)")
    print(f"{'lots':>5} {'days':>5} {'lots x days':>11} {'train s':>8} {'s per 100 lot-days':>19} "
          f"{'train+backtest s':>17}")
    for lots, days in [(4, 75), (8, 75), (8, 150), (16, 150)]:
        frame = synthetic_24h(lots, days + 14)
        cut = frame["observed_at"].min() + pd.Timedelta(days=days)
        train, test = frame[frame["observed_at"] < cut], frame[frame["observed_at"] >= cut]
        cfg = TrainConfig(holiday_country="")
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            report = backtest(train, test, "UTC", 30, 8, cfg, package_dir=Path(tmp), progress=False)
            total = time.monotonic() - started
        train_s = report.package.metrics["candidates"]["gbm"]["train_seconds"]
        print(f"{lots:>5} {days:>5} {lots * days:>11} {train_s:>8.0f} {100 * train_s / (lots * days):>19.2f} "
              f"{total:>17.0f}", flush=True)


def network_fold_forecast(cube, first: int, arch: str, seed: int, max_epochs: int, runs_first_last) -> dict:
    """Train the network on the days before `first` exactly as `parkcast train --architectures
    <arch>` does (validation on its last 7 days, early stopping, refit on all of them), then
    forecast every origin of the fold in the order of `ct.origins` (what the trees' fold holds)."""
    from parking_core.forecasting.invocation import HISTORY_DAYS
    from parking_core.forecasting.training import train
    from parking_core.forecasting.windows import request_at

    cfg = TrainConfig(architectures=(arch,), max_epochs=max_epochs, seed=seed)
    started = time.monotonic()
    result = train(cube.day_slice(0, first), cfg, progress=True)
    train_seconds = time.monotonic() - started
    forecaster = result.forecaster()
    lot, day, slot = ct.origins(cube, *runs_first_last)
    requests = []
    for li, d, s in zip(lot, day, slot, strict=True):
        start = max(0, d - HISTORY_DAYS)
        requests.append(request_at(cube.lots[li], float(cube.capacity[li]), cube.days[start:], cube.rate[li, start:],
                                   d - start, s, cfg.horizon))
    started = time.monotonic()
    q = np.concatenate([forecaster.predict(requests[i:i + 2048]) for i in range(0, len(requests), 2048)])
    return {"q": q.astype(np.float32), "train_seconds": train_seconds, "predict_seconds": time.monotonic() - started,
            "epochs": result.best.epochs, "val_mae": result.candidates[0].val_mae}


def network_runs(cube, arch: str, seed: int, max_epochs: int, cache: Path, train_folds) -> list[dict | None]:
    """Cached network forecasts of each fold ({q, train_seconds, ...}), training the folds in
    `train_folds` that are missing (the others are None unless cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for k, (first, last, role) in enumerate(fold_bounds(cube)):
        path = cache / f"{arch}-fold{k}-seed{seed}-epochs{max_epochs}.npz"
        if not path.exists() and k in train_folds:
            print(f"training {arch} seed {seed} for fold {k} ({cube.days[first]}..{cube.days[last]}, {role}) on "
                  f"{first} days before it", flush=True)
            forecast = network_fold_forecast(cube, first, arch, seed, max_epochs, (first, last))
            np.savez(path, **forecast)
            print(f"fold {k}: trained in {forecast['train_seconds']:.0f} s ({forecast['epochs']} epochs kept), "
                  f"forecast in {forecast['predict_seconds']:.0f} s", flush=True)
        out.append({k: v[()] if v.ndim == 0 else v for k, v in np.load(path).items()} if path.exists() else None)
    return out


SIMPLEX = [(1 - g - n, g, n) for g in ct.BLEND_GRID for n in ct.BLEND_GRID if g + n <= 1 + 1e-9]


def members(run: ct.FoldRun, net_q: np.ndarray | None) -> np.ndarray:
    """[3, N, H] point forecasts: the anchor, the trees (anchor + correction), the network p50."""
    anchor = run.design.anchor
    net = anchor if net_q is None else np.where(np.isnan(net_q[..., 1]), anchor, net_q[..., 1])
    return np.stack([anchor, anchor + run.correction, net])


def blended_run(run: ct.FoldRun, net_q, weight: np.ndarray) -> ct.FoldRun:
    """The fold with the blend (weights [H, 3] over anchor, trees, network) as its correction."""
    p50 = np.einsum("mnh,hm->nh", members(run, net_q), weight)
    return ct.FoldRun(run.first, run.last, run.role, run.design, run.actual, run.mask, p50 - run.design.anchor,
                      run.baselines)


def learn_member_weights(runs: list[ct.FoldRun], nets: list, allowed: tuple[bool, bool, bool]) -> np.ndarray:
    """Per horizon, the weights over (anchor, trees, network) on a 0.1 simplex grid with the
    lowest MAE over `runs`: `ct.learn_blend`'s search with one more member."""
    grid = [w for w in SIMPLEX if all(a or x == 0 for a, x in zip(allowed, w, strict=True))]
    horizon = runs[0].actual.shape[1]
    weight = np.zeros((horizon, 3))
    stacks = [members(r, q) for r, q in zip(runs, nets, strict=True)]
    for h in range(horizon):
        errors = [sum(np.abs(np.tensordot(w, m[:, :, h], 1) - r.actual[:, h])[r.mask[:, h]].sum()
                      for r, m in zip(runs, stacks, strict=True)) for w in grid]
        weight[h] = grid[int(np.argmin(errors))]
    return weight


def member_blend_scores(runs, nets, cube, allowed) -> tuple[list[dict], list[np.ndarray]]:
    """Each choice fold with weights and band from the other choice folds, the final fold with
    those of all three (as `ct.rolling_origin` scores the shipped blend)."""
    choice = [k for k, r in enumerate(runs) if r.role == "choice"]
    rows, weights = [], []
    for k, r in enumerate(runs):
        others = [c for c in choice if c != k]
        weight = learn_member_weights([runs[c] for c in others], [nets[c] for c in others], allowed)
        band = full_weight([blended_run(runs[c], nets[c], weight) for c in others])
        rows.append(ct.score(blended_run(r, nets[k], weight), band, cube).to_dict())
        weights.append(weight)
    return rows, weights


def networks(arch: str, seeds: list[int], max_epochs: int, cache: Path, only_fold: int | None,
             cached_only: bool = False) -> None:
    cube, holidays = sample_cube()
    # --fold K trains fold K of the first seed only; the other seeds are read from the cache.
    train_folds = () if cached_only else range(4) if only_fold is None else {only_fold}
    nets = network_runs(cube, arch, seeds[0], max_epochs, cache, train_folds)
    extra = {s: network_runs(cube, arch, s, max_epochs, cache, ()) for s in seeds[1:]}
    if only_fold is not None:
        return
    started = time.monotonic()
    runs = gbm_fold_runs(cube, holidays)
    print(f"(trees on the 4 folds: {time.monotonic() - started:.0f} s)")
    missing = [k for k, n in enumerate(nets) if n is None]
    if missing:  # a fold whose training did not finish: score the others, say so
        print(f"folds {missing} have no cached {arch} forecasts: left out of every row below")
        runs = [r for r, n in zip(runs, nets, strict=True) if n is not None]
        extra = {s: [o for o, n in zip(other, nets, strict=True) if n is not None] for s, other in extra.items()}
        nets = [n for n in nets if n is not None]
    qs = [n["q"] for n in nets]
    alone = [ct.score_quantiles(r, q, cube).to_dict() for r, q in zip(runs, qs, strict=True)]
    rows = {f"{arch} alone (own P10-P90)": alone}
    for name, allowed in ((f"anchor + {arch} blend", (True, False, True)),
                          ("gbm + blend (shipped)", (True, True, False)),
                          (f"gbm + {arch} blend", (True, True, True))):
        rows[name], weights = member_blend_scores(runs, qs, cube, allowed)
    print(f"\n{arch} alone, trained on the days before each fold (seed {seeds[0]}, max_epochs {max_epochs}):")
    print(ct.fold_table(alone))
    print(f"\ngbm + {arch} blend (weights and band from the other choice folds):")
    print(ct.fold_table(rows[f"gbm + {arch} blend"]))
    print("weights (anchor, gbm, network) per horizon learned on the 3 choice folds (what would ship):")
    print(np.array2string(weights[-1], precision=1, suppress_small=True))
    print(f"\n{'model':<26} {'MAE':>8} {'gain':>8} {'sd':>6} {'worst':>7} {'P10-P90':>13} {'final':>8} "
          f"{'gain':>7} {'cover':>7}")
    for name, folds in rows.items():
        print(fold_summary(name, folds))
    print(f"\n{'fold':<6} {'epochs':>6} {'val MAE':>8} {'train s':>8} {'forecast s':>10}  (2 shared cores)")
    for k, n in enumerate(nets):
        print(f"{k:<6} {int(n['epochs']):>6} {float(n['val_mae']):>8.4f} {float(n['train_seconds']):>8.0f} "
              f"{float(n['predict_seconds']):>10.0f}")
    for seed, other in extra.items():
        for k, n in enumerate(other):
            if n is None:
                continue
            a = ct.score_quantiles(runs[k], n["q"], cube).to_dict()
            b = alone[k]
            print(f"seed noise, fold {k}: {arch} alone gain {b['improvement_vs_weekly_level']:+.1%} (seed {seeds[0]}) "
                  f"vs {a['improvement_vs_weekly_level']:+.1%} (seed {seed}); MAE {b['mae']['model']:.4f} vs "
                  f"{a['mae']['model']:.4f}")
            swapped = [n["q"] if j == k else q for j, q in enumerate(qs)]
            blend, _ = member_blend_scores(runs, swapped, cube, (True, True, True))
            print(f"  gbm + {arch} blend on fold {k} with seed {seed}'s network there: gain "
                  f"{blend[k]['improvement_vs_weekly_level']:+.1%} (seed {seeds[0]}: "
                  f"{rows[f'gbm + {arch} blend'][k]['improvement_vs_weekly_level']:+.1%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["folds", "paths", "scaling", "networks"], default=None,
                    help="one part only (networks: never run unless asked, it takes minutes per fold)")
    ap.add_argument("--arch", choices=["nhits", "tft"], default="nhits", help="networks: which one")
    ap.add_argument("--seed", type=int, action="append", help="networks: seed(s); the first scores every fold, "
                    "the others state the seed noise on the folds cached for them (default: 42)")
    ap.add_argument("--fold", type=int, default=None, help="networks: train this fold only (0-3), then stop")
    ap.add_argument("--cached-only", action="store_true", help="networks: score the cached folds, train nothing")
    ap.add_argument("--max-epochs", type=int, default=TrainConfig.max_epochs, help="networks: epoch cap")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "parkcast-network-folds",
                    help="networks: where each fold's forecasts are kept")
    args = ap.parse_args()
    if args.only == "networks":
        networks(args.arch, args.seed or [TrainConfig.seed], args.max_epochs, args.cache, args.fold, args.cached_only)
        return
    for name, part in (("folds", accuracy), ("paths", user_paths), ("scaling", scaling)):
        if args.only in (None, name):
            part()


if __name__ == "__main__":
    main()
