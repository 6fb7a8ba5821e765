"""Training of the correction forecaster on rolling-origin folds (scikit-learn; never imported
when serving).

Folds are the last weeks of the training data, one week each, every fold's model trained only
on the days before it. The earlier folds ("choice" folds) are the only data any choice sees:
the per-horizon blend weight between the trees and the anchor and the conformal band. The last
fold ("final") is scored with choices made on the others and never used for anything else.
The shipped model is then fitted on every day, with the blend and band from the choice folds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from tqdm import tqdm

from parking_core.forecasting.baselines import BASELINES, baseline_point_forecasts
from parking_core.forecasting.correction import (
    FEATURES,
    Blend,
    Design,
    calendar,
    conformal_offsets,
    design,
    flat_inputs,
    gather,
)
from parking_core.forecasting.features import Profile
from parking_core.forecasting.grid import Cube

log = logging.getLogger("parkcast.training")

FOLD_DAYS = 7
MIN_TRAIN_DAYS = 28  # two weeks for the lags to fill, two weeks of origins to learn from
BLEND_GRID = np.linspace(0.0, 1.0, 11)


@dataclass
class GbmConfig:
    # Chosen on the 3 choice folds of the Birmingham sample (mean gain over the anchor +- sd over
    # the folds; docs/benchmarks.md #17 keeps the whole list). The metric is MAE, so the trees
    # fit the median of the correction (absolute error): +7.0 % against +6.5 % for squared error
    # on the same inputs; 300 trees at 0.05 +7.8 +- 1.5 %, 300 at 0.1 +7.6 %, 150 at 0.1 +7.4 %,
    # 7 leaves +6.9 %, 31 leaves +6.0 %. Recency weights no longer help: half-life 7 days +6.3 %,
    # 14 +7.4 %, 28 +6.8 %, none +7.6 %. The final fold played no part.
    iterations: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    loss: str = "absolute_error"
    half_life_days: float | None = None  # weight halves every half_life_days (None: all days alike)
    seed: int = 0
    monotone: tuple[str, ...] = ()  # inputs the correction may only grow with (names from FEATURES)


def origins(cube: Cube, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lot, day, slot) of every origin on days first..last: each slot but the day's last, on
    days the lot reported anything (what the backtest walks)."""
    n_lots, _, slots = cube.rate.shape
    lot, day, slot = np.meshgrid(np.arange(n_lots), np.arange(first, last + 1), np.arange(slots - 1), indexing="ij")
    lot, day, slot = lot.ravel(), day.ravel(), slot.ravel()
    keep = ~np.isnan(cube.rate[lot, day]).all(axis=1)
    return lot[keep], day[keep], slot[keep]


def cube_design(cube: Cube, stop: int, profile: Profile, holidays: set[date], first: int, last: int,
                horizon: int) -> tuple[Design, np.ndarray, np.ndarray, tuple]:
    """Design, actual rates and the scoring mask (same-day, observed) of the origins on days
    first..last, from the grid cut at day `stop` (exclusive): nothing later exists for it."""
    rate = cube.rate[:, :stop]
    dows, holiday = calendar(cube.days[:stop], holidays)
    n_lots = len(cube.lots)
    lot, day, slot = origins(cube, first, last)
    prof = np.stack([profile.for_lot(lot_id) for lot_id in cube.lots])
    d = design(rate, np.tile(dows, (n_lots, 1)), np.tile(holiday, (n_lots, 1)), prof, lot, day, slot, horizon)
    actual = gather(rate, np.repeat(lot[:, None], horizon, 1), d.target_day, d.target_slot)
    mask = d.same_day & ~np.isnan(actual)
    return d, actual, mask, (lot, day, slot)


@dataclass
class TreeHead:
    """Gradient-boosted trees on (inputs, step) -> correction to the anchor."""

    model: object  # sklearn HistGradientBoostingRegressor

    @classmethod
    def fit(cls, d: Design, actual: np.ndarray, mask: np.ndarray, age_days: np.ndarray, cfg: GbmConfig) -> TreeHead:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x = flat_inputs(d)[mask.reshape(-1)]
        y = (actual - d.anchor)[mask]
        weight = None
        if cfg.half_life_days:
            weight = np.power(2.0, -np.broadcast_to(age_days[:, None], mask.shape)[mask] / cfg.half_life_days)
        unknown = set(cfg.monotone) - set(FEATURES)
        if unknown:
            raise ValueError(f"monotone: unknown inputs {sorted(unknown)}")
        increasing = [int(name in cfg.monotone) for name in FEATURES] + [0] if cfg.monotone else None  # + the step
        model = HistGradientBoostingRegressor(loss=cfg.loss, max_iter=cfg.iterations, learning_rate=cfg.learning_rate,
                                              max_leaf_nodes=cfg.max_leaf_nodes, early_stopping=False,
                                              random_state=cfg.seed, monotonic_cst=increasing)
        model.fit(x, y, sample_weight=weight)
        return cls(model)

    def correction(self, d: Design) -> np.ndarray:
        return self.model.predict(flat_inputs(d)).reshape(d.anchor.shape).astype(np.float32)


def fit_head(cube: Cube, stop: int, holidays: set[date], horizon: int, cfg: GbmConfig) -> tuple[TreeHead, Profile]:
    """Trees fitted on the origins of days before `stop` (the profile too sees only those days)."""
    profile = Profile.fit(cube.lots, cube.rate[:, :stop], cube.days[:stop])
    d, actual, mask, (_, day, _) = cube_design(cube, stop, profile, holidays, 0, stop - 1, horizon)
    return TreeHead.fit(d, actual, mask, (stop - 1 - day).astype(float), cfg), profile


@dataclass
class FoldRun:
    """Out-of-sample forecasts of one fold, before any blend."""

    first: int
    last: int
    role: str  # "choice" or "final"
    design: Design
    actual: np.ndarray
    mask: np.ndarray
    correction: np.ndarray
    baselines: dict[str, np.ndarray]


@dataclass
class FoldScore:
    first_day: date
    last_day: date
    role: str
    mae: dict[str, float]
    coverage: float
    points: int
    weight: list[float] = field(default_factory=list)

    @property
    def improvement(self) -> float:
        return 1.0 - self.mae["model"] / self.mae["weekly_level"]

    def to_dict(self) -> dict:
        return {"first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat(), "role": self.role,
                "mae": {k: round(v, 6) for k, v in self.mae.items()},
                "improvement_vs_weekly_level": round(self.improvement, 4),
                "coverage_p10_p90": round(self.coverage, 4), "scored_points": self.points,
                "blend_weight": [round(w, 2) for w in self.weight]}


def fold_starts(n_days: int, folds: int, fold_days: int = FOLD_DAYS) -> list[int]:
    """First day of each fold, the last `folds` weeks of the data; folds whose training would
    be shorter than MIN_TRAIN_DAYS are dropped."""
    starts = [n_days - fold_days * k for k in range(folds, 0, -1)]
    return [s for s in starts if s >= MIN_TRAIN_DAYS]


def run_fold(cube: Cube, first: int, last: int, role: str, holidays: set[date], horizon: int,
             cfg: GbmConfig) -> FoldRun:
    head, profile = fit_head(cube, first, holidays, horizon, cfg)
    d, actual, mask, origins_ = cube_design(cube, last + 1, profile, holidays, first, last, horizon)
    return FoldRun(first, last, role, d, actual, mask, head.correction(d), fold_baselines(cube, *origins_, horizon))


def fold_baselines(cube: Cube, lot: np.ndarray, day: np.ndarray, slot: np.ndarray, horizon: int
                   ) -> dict[str, np.ndarray]:
    """[N, H] forecasts of every baseline from the origins (lot, day, slot), each from the grid
    cut at its origin."""
    base = {name: np.full((len(lot), horizon), np.nan, np.float32) for name in BASELINES}
    for i, (li, di, si) in enumerate(zip(lot, day, slot, strict=True)):
        points = baseline_point_forecasts(cube.rate[li, : di + 1], di, si, horizon)
        for name in BASELINES:
            base[name][i] = points[name]
    return base


def learn_blend(runs: list[FoldRun]) -> Blend:
    """Per-horizon weight of the correction (0 = the anchor alone) with the lowest MAE over
    `runs`, then the conformal band of the blended forecast on the same runs."""
    horizon = runs[0].actual.shape[1]
    weight = np.zeros(horizon, np.float32)
    if runs:
        for h in range(horizon):
            errors = [sum(np.abs(r.design.anchor[:, h] + w * r.correction[:, h] - r.actual[:, h])[r.mask[:, h]].sum()
                          for r in runs) for w in BLEND_GRID]
            weight[h] = BLEND_GRID[int(np.argmin(errors))]
    blend = Blend(weight, np.zeros((horizon, 2), np.float32))
    residuals = [np.nan_to_num(r.actual - blend.quantiles(r.design, r.correction)[..., 1]) for r in runs]
    blend.offsets = conformal_offsets(np.concatenate(residuals), np.concatenate([r.mask for r in runs]))
    return blend


def anchor_blend(cube: Cube, holidays: set[date], horizon: int) -> Blend:
    """No folds to learn from: the anchor alone, with its band over every day (it has no fitted
    parameters, so that band is already out of sample)."""
    profile = Profile.fit(cube.lots, cube.rate, cube.days)
    d, actual, mask, _ = cube_design(cube, len(cube.days), profile, holidays, 0, len(cube.days) - 1, horizon)
    return Blend(np.zeros(horizon, np.float32), conformal_offsets(np.nan_to_num(actual - d.anchor), mask))


def score(run: FoldRun, blend: Blend, cube: Cube) -> FoldScore:
    return score_quantiles(run, blend.quantiles(run.design, run.correction), cube, blend.weight)


def score_quantiles(run: FoldRun, q: np.ndarray, cube: Cube, weight=()) -> FoldScore:
    """Scores of any [N, H, 3] forecast (p10, p50, p90) of the fold's origins."""
    m = run.mask
    mae = {"model": float(np.abs(q[..., 1] - run.actual)[m].mean())}
    for name, values in run.baselines.items():
        mae[name] = float(np.abs(values - run.actual)[m].mean())
    covered = (run.actual >= q[..., 0]) & (run.actual <= q[..., 2])
    return FoldScore(cube.days[run.first], cube.days[run.last], run.role, mae, float(covered[m].mean()), int(m.sum()),
                     [float(w) for w in weight])


@dataclass
class RollingOrigin:
    scores: list[FoldScore]
    blend: Blend  # learned on every choice fold: what ships

    def summary(self) -> dict:
        """What metrics.json records; `beats_weekly_level` is the promotion floor."""
        choice = [s for s in self.scores if s.role == "choice"]
        final = [s for s in self.scores if s.role == "final"]
        out: dict = {"folds": [s.to_dict() for s in self.scores], "fold_days": FOLD_DAYS}
        if choice:
            imp = [s.improvement for s in choice]
            out["choice_folds"] = {
                "mae_mean": round(float(np.mean([s.mae["model"] for s in choice])), 6),
                "weekly_level_mae_mean": round(float(np.mean([s.mae["weekly_level"] for s in choice])), 6),
                "improvement_mean": round(float(np.mean(imp)), 4),
                "improvement_std": round(float(np.std(imp, ddof=1)) if len(imp) > 1 else 0.0, 4),
                "coverage_min": round(min(s.coverage for s in choice), 4),
                "coverage_max": round(max(s.coverage for s in choice), 4),
            }
        if final:
            out["final_fold"] = final[0].to_dict()
        if self.scores:
            out.update(floor_fields(self.scores))
        else:
            out.update(mae=None, weekly_level_mae=None, beats_weekly_level=False,
                       note="too little history for a rolling-origin fold: the served forecast is the baseline")
        return out


def floor_fields(scores: list[FoldScore]) -> dict:
    """The promotion floor over the folds: mean MAE of the model against the weekly
    level-adjusted baseline's."""
    model = float(np.mean([s.mae["model"] for s in scores]))
    base = float(np.mean([s.mae["weekly_level"] for s in scores]))
    return {"mae": round(model, 6), "weekly_level_mae": round(base, 6), "beats_weekly_level": bool(model < base)}


def holdout_evidence(summary: dict, first_day: date, last_day: date) -> dict:
    """A network's floor evidence, in the same shape as RollingOrigin.summary(): its validation
    block is one time fold (the weights it ships were chosen on the days before it). Early
    stopping and the choice between networks also read that block, so the figure leans
    optimistic: failing it is conclusive, passing it is the minimum."""
    fold = FoldScore(first_day, last_day, "holdout", {k: float(v) for k, v in summary["mae"].items()},
                     float(summary["coverage_p10_p90"]), int(summary["scored_points"]))
    return {"folds": [fold.to_dict()], "fold_days": (last_day - first_day).days + 1, **floor_fields([fold]),
            "note": "one hold-out block at the end of the training data (also used for early stopping)"}


def rolling_origin(cube: Cube, holidays: set[date], horizon: int, folds: int, cfg: GbmConfig,
                   progress: bool = True) -> RollingOrigin:
    """Train and score every fold (see the module docstring). Choice folds are reported with the
    blend learned on the other choice folds (leave one fold out), the final fold with the blend
    of all choice folds."""
    starts = fold_starts(len(cube.days), folds)
    runs = []
    bar = tqdm(starts, desc="rolling-origin folds", unit="fold", disable=not progress)
    for k, first in enumerate(bar):
        started = time.monotonic()
        last = first + FOLD_DAYS - 1
        role = "final" if k == len(starts) - 1 and len(starts) > 1 else "choice"
        runs.append(run_fold(cube, first, min(last, len(cube.days) - 1), role, holidays, horizon, cfg))
        log.info("fold %s..%s (%s) trained and forecast in %.1fs", cube.days[first], cube.days[runs[-1].last], role,
                 time.monotonic() - started)
    choice = [r for r in runs if r.role == "choice"]
    if not choice:
        return RollingOrigin([], anchor_blend(cube, holidays, horizon))
    return RollingOrigin(score_runs(runs, cube), learn_blend(choice))


def score_runs(runs: list[FoldRun], cube: Cube, learn: Callable[[list[FoldRun]], Blend] | None = None
               ) -> list[FoldScore]:
    """Each choice fold scored with what `learn` (default: learn_blend) fits on the other choice
    folds (leave one fold out), the final fold with what it fits on all of them."""
    learn = learn or learn_blend
    choice = [r for r in runs if r.role == "choice"]
    return [score(r, learn([c for c in choice if c is not r] or choice), cube) for r in runs]


def fold_table(folds: list[dict]) -> str:
    """Per-fold MAE of the model and the baselines, gain over the weekly level-adjusted baseline
    and P10-P90 coverage, from FoldScore.to_dict() rows (as metrics.json keeps them)."""
    lines = [f"{'fold':<23} {'role':<7} {'model':>7} {'persist':>8} {'weekly':>7} {'wk+lvl':>7} {'gain':>7} "
             f"{'P10-90':>7} {'n':>6}"]
    for f in folds:
        m = f["mae"]
        lines.append(f"{f['first_day']}..{f['last_day']} {f['role']:<7} {m['model']:>7.4f} {m['persistence']:>8.4f} "
                     f"{m['weekly_naive']:>7.4f} {m['weekly_level']:>7.4f} {f['improvement_vs_weekly_level']:>+7.1%} "
                     f"{f['coverage_p10_p90']:>7.1%} {f['scored_points']:>6}")
    gains = [f["improvement_vs_weekly_level"] for f in folds if f["role"] == "choice"]
    if len(gains) > 1:
        cover = [f["coverage_p10_p90"] for f in folds if f["role"] == "choice"]
        lines.append(f"choice folds: gain {np.mean(gains):+.1%} +- {np.std(gains, ddof=1):.1%} (mean +- sd over "
                     f"{len(gains)} folds); P10-P90 coverage {min(cover):.1%}..{max(cover):.1%}")
    return "\n".join(lines)


__all__ = ["FEATURES", "GbmConfig", "RollingOrigin", "TreeHead", "fit_head", "fold_table", "holdout_evidence",
           "rolling_origin", "score_runs"]


def trees_to_onnx(model, n_inputs: int) -> bytes:
    """The fitted HistGradientBoostingRegressor as one ai.onnx.ml TreeEnsembleRegressor node:
    input [N, n_inputs] float32 -> correction [N, 1]."""
    from onnx import TensorProto, helper

    attrs: dict[str, list] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes", "nodes_truenodeids",
        "nodes_falsenodeids", "nodes_missing_value_tracks_true", "target_treeids", "target_nodeids", "target_ids",
        "target_weights")}
    for tree_id, (predictor,) in enumerate(model._predictors):
        for node_id, node in enumerate(predictor.nodes):
            attrs["nodes_treeids"].append(tree_id)
            attrs["nodes_nodeids"].append(node_id)
            if node["is_leaf"]:
                attrs["nodes_modes"].append("LEAF")
                attrs["nodes_featureids"].append(0)
                attrs["nodes_values"].append(0.0)
                attrs["nodes_truenodeids"].append(0)
                attrs["nodes_falsenodeids"].append(0)
                attrs["nodes_missing_value_tracks_true"].append(0)
                attrs["target_treeids"].append(tree_id)
                attrs["target_nodeids"].append(node_id)
                attrs["target_ids"].append(0)
                attrs["target_weights"].append(float(node["value"]))
            else:
                # float32 inputs: x <= t (float64) exactly when x <= the largest float32 <= t.
                threshold = np.float32(node["num_threshold"])
                if threshold > node["num_threshold"]:
                    threshold = np.nextafter(threshold, np.float32(-np.inf))
                attrs["nodes_modes"].append("BRANCH_LEQ")
                attrs["nodes_featureids"].append(int(node["feature_idx"]))
                attrs["nodes_values"].append(float(threshold))
                attrs["nodes_truenodeids"].append(int(node["left"]))
                attrs["nodes_falsenodeids"].append(int(node["right"]))
                attrs["nodes_missing_value_tracks_true"].append(int(node["missing_go_to_left"]))
    base = float(np.ravel(model._baseline_prediction)[0])
    node = helper.make_node("TreeEnsembleRegressor", ["inputs"], ["correction"], domain="ai.onnx.ml", n_targets=1,
                            base_values=[base], aggregate_function="SUM", post_transform="NONE", **attrs)
    graph = helper.make_graph(
        [node], "anchor_correction",
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, [None, n_inputs])],
        [helper.make_tensor_value_info("correction", TensorProto.FLOAT, [None, 1])],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                         helper.make_opsetid("ai.onnx.ml", 3)])
    onnx_model.ir_version = 9
    return onnx_model.SerializeToString()


@dataclass
class CorrectionResult:
    head: TreeHead
    profile: Profile
    holidays: set[date]
    rolling: RollingOrigin
    horizon: int
    seconds: float


def train_correction(cube: Cube, holidays: set[date], horizon: int, folds: int, cfg: GbmConfig,
                     progress: bool = True) -> CorrectionResult:
    """Rolling-origin folds, then the shipped trees fitted on every day."""
    started = time.monotonic()
    rolling = rolling_origin(cube, holidays, horizon, folds, cfg, progress)
    head, profile = fit_head(cube, len(cube.days), holidays, horizon, cfg)
    log.info("correction trees fitted on %d days; blend weights %s", len(cube.days),
             [round(float(w), 2) for w in rolling.blend.weight])
    return CorrectionResult(head, profile, holidays, rolling, horizon, time.monotonic() - started)


def write_package(result: CorrectionResult, cube: Cube, out_dir, timezone: str, config: dict):
    """The model package of a correction model (format as package.py describes)."""
    import json
    from pathlib import Path

    import onnxruntime as ort

    from parking_core.forecasting.backtest import run_backtest
    from parking_core.forecasting.package import (
        PACKAGE_FORMAT,
        baseline_intervals,
        code_version,
        data_hash,
        file_sha256,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_inputs = len(FEATURES) + 1
    (out_dir / "model.onnx").write_bytes(trees_to_onnx(result.head.model, n_inputs))

    # Equivalence of the exported trees with scikit-learn on the inputs of the last week.
    last_week = max(0, len(cube.days) - FOLD_DAYS)
    d, _, _, _ = cube_design(cube, len(cube.days), result.profile, result.holidays, last_week, len(cube.days) - 1,
                             result.horizon)
    inputs = flat_inputs(d)
    session = ort.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_diff = float(np.abs(session.run(None, {"inputs": inputs})[0][:, 0] - result.head.model.predict(inputs)).max())

    recent = run_backtest(cube, cube.days[last_week], result.horizon, None, progress=False)
    rolling = result.rolling.summary()
    blend = result.rolling.blend
    preprocessing = {
        "timezone": timezone,
        "grid": cube.spec.to_dict(),
        "correction": {"horizon": result.horizon, "features": [*FEATURES, "step"], "blend": blend.to_dict()},
        "profile": result.profile.to_dict(),
        "holidays": sorted(d.isoformat() for d in result.holidays),
        "lots": {lot: float(cube.capacity[i]) for i, lot in enumerate(cube.lots)},
        "baseline_intervals": baseline_intervals(recent.rows),
    }
    folds = rolling["folds"]
    metrics = {
        "selected": "gbm",
        "candidates": {"gbm": {"val_intraday_mae": rolling["mae"], "epochs": 0,
                               "train_seconds": round(result.seconds, 1)}},
        # Mean over the rolling-origin folds (names kept from the network packages).
        "validation_baselines_mae": {
            name: round(float(np.mean([f["mae"][name] for f in folds])), 6) if folds else None for name in BASELINES
        },
        "validation_window": ({"first_day": folds[0]["first_day"], "last_day": folds[-1]["last_day"]} if folds
                              else None),
        "rolling_origin": rolling,
        "beats_weekly_level": rolling["beats_weekly_level"],
        "serves_baseline": bool(not blend.weight.any()),
        "onnx_max_abs_diff": onnx_diff,
    }
    digest = data_hash(cube)
    (out_dir / "preprocessing.json").write_text(json.dumps(preprocessing, indent=1))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    files = ["model.onnx", "preprocessing.json", "metrics.json"]
    manifest = {
        "format": PACKAGE_FORMAT,
        "model_version": f"gbm-{digest[:10]}",
        "architecture": "gbm",
        "quantiles": [0.1, 0.5, 0.9],
        "target": "occupancy rate (occupied / capacity), forecast as a correction to the weekly level-adjusted "
                  "forecast",
        "training_window": {"first_day": cube.days[0].isoformat(), "last_day": cube.days[-1].isoformat()},
        "data_hash": digest,
        "code_version": code_version(),
        "config": config,
        "files": {name: file_sha256(out_dir / name) for name in files},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out_dir
