"""Evaluation and promotion: one implementation behind the Dagster assets/sensor and the
evaluate-promote Lambda.

- On registration the candidate is backtested beside production on the most recent window
  and the report is attached to the version, so the approver sees evidence.
- Only an Approved version is ever considered, and it is promoted only if it beats the weekly
  level-adjusted baseline on its rolling-origin folds (the floor; a package without that
  evidence is refused too) and is not worse than production on that window; a refusal and its
  reason are recorded on the version. Nothing here approves anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from parking_core.forecasting.backtest import run_backtest
from parking_core.forecasting.grid import Cube
from parking_core.forecasting.package import ModelPackage
from parking_core.pipeline_values import RetrainDecision
from parking_core.registry import ApprovalStatus, ModelRegistry, ModelVersion

EVALUATION_DAYS = 7


def decide_retrain(
    *,
    has_new_days: bool,
    has_dataset: bool,
    drift: bool | None,
    finding: str,
    production_version: int | None,
    waiting_version: int | None,
    force: bool,
) -> RetrainDecision:
    """The condition between the drift report and training (RetrainNeeded in SageMaker).

    Retrain on drift, on the first data (no dataset yet), when nothing is in production and no
    version awaits a person's decision, or when forced; never without any data.
    """
    reasons = []
    if has_new_days and not has_dataset:
        reasons.append("no consolidated dataset yet")
    if drift:
        reasons.append("drift detected")
    has_data = has_new_days or has_dataset
    if production_version is None and has_data and waiting_version is None:
        reasons.append("no production model")
    if force and has_data:
        reasons.append("retrain forced")
    if reasons:
        return RetrainDecision(retrain=True, reasons=reasons, summary=f"retrain: {', '.join(reasons)}")
    if production_version is not None:
        finding += f" and production is version {production_version}"
    elif waiting_version is not None:
        finding += f" and version {waiting_version} awaits approval"
    return RetrainDecision(retrain=False, summary=f"no retrain: {finding}")


def evaluate_candidate(
    candidate: ModelPackage, production: ModelPackage | None, cube: Cube, window_days: int = EVALUATION_DAYS
) -> dict:
    """Flat report (scalars only: it must fit SageMaker's customer metadata)."""
    start = cube.days[max(0, len(cube.days) - window_days)]
    report: dict = {
        "window_start": start.isoformat(),
        "window_end": cube.days[-1].isoformat(),
        "candidate_version": candidate.version,
    }
    result = run_backtest(cube, start, candidate.horizon, candidate.forecaster(), progress=False)
    summary = result.summary()
    report["candidate_mae"] = round(summary["mae"]["model"], 6)
    report["candidate_coverage"] = round(summary["coverage_p10_p90"], 4)
    report["baseline_weekly_level_mae"] = round(summary["mae"]["weekly_level"], 6)
    report["scored_points"] = summary["scored_points"]
    rolling = candidate.metrics.get("rolling_origin")
    if rolling is not None:
        # The floor's evidence: the candidate's own rolling-origin folds (training time).
        report["beats_weekly_level"] = bool(rolling.get("beats_weekly_level", False))
        report["rolling_origin_mae"] = rolling.get("mae")
        report["rolling_origin_weekly_level_mae"] = rolling.get("weekly_level_mae")
        report["rolling_origin_folds"] = len(rolling.get("folds", []))
    if production is not None:
        prod = run_backtest(cube, start, production.horizon, production.forecaster(), progress=False).summary()
        report["production_version"] = production.version
        report["production_mae"] = round(prod["mae"]["model"], 6)
        report["production_coverage"] = round(prod["coverage_p10_p90"], 4)
    return report


def promotion_decision(evaluation: dict | None, tolerance: float = 0.0) -> tuple[bool, str]:
    if not evaluation or "candidate_mae" not in evaluation:
        return False, "no evaluation attached to the version"
    # The floor, whatever production scored: a model that does not beat "same time last week,
    # scaled to today's level" on its rolling-origin folds is never promoted, and neither is one
    # whose package carries no such evidence (nothing shows it beats the baseline).
    if "beats_weekly_level" not in evaluation:
        return False, ("no rolling-origin evidence in the model package: the floor against the weekly "
                       "level-adjusted baseline cannot be checked; retrain it with this version")
    if evaluation["beats_weekly_level"] is not True:
        cand, base = evaluation.get("rolling_origin_mae"), evaluation.get("rolling_origin_weekly_level_mae")
        figures = f" ({cand:.4f} against {base:.4f})" if cand is not None and base is not None else ""
        return False, f"rolling-origin MAE is not better than the weekly level-adjusted baseline{figures}"
    if "production_mae" not in evaluation:
        return True, "no production model yet"
    cand, prod = evaluation["candidate_mae"], evaluation["production_mae"]
    if cand <= prod * (1 + tolerance):
        return True, f"candidate MAE {cand:.4f} is not worse than production {prod:.4f}"
    return False, f"candidate MAE {cand:.4f} is worse than production {prod:.4f} on {evaluation['window_start']}.."


def promote_if_better(
    registry: ModelRegistry,
    group: str,
    version: int,
    deploy: Callable[[ModelVersion], None],
    tolerance: float = 0.0,
    now: datetime | None = None,
) -> dict:
    """Promote an Approved version unless it is worse than production; record the decision.

    `deploy` puts the model behind the forecast endpoint; if it raises, production is untouched.
    """
    v = registry.get(group, version)
    decided_at = (now or datetime.now(UTC)).isoformat()
    if v.status != ApprovalStatus.APPROVED:
        # Not recorded: the version may still be approved later, and then it is decided.
        return {"promoted": False, "reason": f"status is {v.status}, not Approved", "at": decided_at}
    allowed, reason = promotion_decision(v.evaluation, tolerance)
    if allowed:
        try:
            deploy(v)
        except Exception as exc:  # noqa: BLE001 - any deployment failure leaves production as it was
            decision = {"promoted": False, "reason": f"deployment failed: {exc}"[:250], "at": decided_at}
            registry.record_promotion(group, version, decision)
            raise
        registry.set_production(group, version)
    decision = {"promoted": allowed, "reason": reason[:250], "at": decided_at}
    registry.record_promotion(group, version, decision)
    return decision


def pending_promotions(registry: ModelRegistry, group: str) -> list[ModelVersion]:
    """Approved versions without a promotion decision yet (what the sensor acts on)."""
    return [v for v in registry.list(group) if v.status == ApprovalStatus.APPROVED and v.promotion is None]


def evaluate_registered_version(registry: ModelRegistry, objects, store, group: str, version: int,
                                window_days: int = EVALUATION_DAYS) -> dict:
    """Fetch the candidate and production packages, backtest both on the dataset's last
    `window_days`, attach the report to the version (the approver's evidence) and return it."""
    import tempfile
    from pathlib import Path

    from parking_core import dataset
    from parking_core.forecasting.grid import readings_to_cube
    from parking_core.forecasting.models_dir import common_grid
    from parking_core.forecasting.package import download_package

    candidate_version = registry.get(group, version)
    production = registry.production(group)
    timezone, step = common_grid(store)
    with tempfile.TemporaryDirectory() as tmp:
        candidate = download_package(objects, objects.key_of(candidate_version.model_uri), Path(tmp) / "candidate")
        current = (download_package(objects, objects.key_of(production.model_uri), Path(tmp) / "production")
                   if production else None)
        frame = dataset.to_pandas(dataset.load(objects))
        cube = readings_to_cube(frame, timezone, step, spec=candidate.grid)
        report = evaluate_candidate(candidate, current, cube, window_days)
    registry.attach_evaluation(group, version, report)
    return report


def on_package_state_change(registry: ModelRegistry, group: str, version: int, status: str,
                            evaluate: Callable[[], dict], deploy: Callable[[ModelVersion], None]) -> dict:
    """What the registry's state-change event triggers (the evaluate-promote Lambda; Dagster's
    asset and sensor do the same steps). Idempotent: a repeated event changes nothing."""
    current = registry.get(group, version)
    if status == ApprovalStatus.PENDING:
        if current.evaluation:
            return {"action": "none", "reason": "already evaluated"}
        return {"action": "evaluated", "evaluation": evaluate()}
    if status == ApprovalStatus.APPROVED:
        if current.promotion is not None:
            return {"action": "none", "reason": f"already decided: {current.promotion['reason']}"}
        return {"action": "promotion", **promote_if_better(registry, group, version, deploy)}
    return {"action": "none", "reason": f"status {status}: nothing to do"}
