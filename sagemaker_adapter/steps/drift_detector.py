"""CheckDataDrift: the drift test and the retrain condition. Writes drift/<day>/report.* and
drift/last_run.json, and its DriftAssessment (whose decision RetrainNeeded reads) as the run's value."""

from __future__ import annotations

from parking_core.config import Settings
from parking_core.pipeline_steps import check_drift
from parking_core.pipeline_values import DriftAssessment
from parking_core.registry import open_registry
from sagemaker_adapter.steps.common import finish, object_store, processing_args


def _in(low: float, high: float, kind=float):
    """An argparse type: a number in (low, high], or argparse's own clear error."""
    def parse(text: str):
        value = kind(text)
        if not low < value <= high:
            raise ValueError(text)
        return value
    parse.__name__ = f"{kind.__name__} in ({low}, {high}]"
    return parse


def _arguments(parser) -> None:
    parser.add_argument("--timezone", required=True)
    parser.add_argument("--grid-step-minutes", type=_in(0, 1440, int), required=True)
    parser.add_argument("--drift-p-value", type=_in(0, 1), default=0.05)
    parser.add_argument("--drift-min-effect", type=_in(0, 1), default=0.05)
    parser.add_argument("--reference-days", type=_in(0, 3660, int), default=21)
    # As the pipeline parameter ForceRetrain: "true" or "false", anything else refused (not read as false).
    parser.add_argument("--force-retrain", type=str.lower, choices=["true", "false"], default="false")


def main(argv=None) -> DriftAssessment:
    args = processing_args(__doc__, _arguments, argv)
    settings = Settings()  # PARKCAST_REGISTRY, PARKCAST_MODEL_GROUP, ... from the step's environment
    check = check_drift(
        object_store(args.objects), open_registry(settings), settings.model_group, args.timezone,
        args.grid_step_minutes, reference_days=args.reference_days, p_value=args.drift_p_value,
        min_effect=args.drift_min_effect, force=args.force_retrain.lower() == "true", run_id=args.run_id,
    )
    finish(args, check.assessment)
    print(check.decision.summary, flush=True)
    return check.assessment


if __name__ == "__main__":
    main()
