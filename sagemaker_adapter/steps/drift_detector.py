"""CheckDataDrift: the drift test and the retrain condition. Writes drift/<day>/report.* and
drift/last_run.json, and its DriftAssessment (whose decision RetrainNeeded reads) as the run's value."""

from __future__ import annotations

from parking_core.config import Settings
from parking_core.pipeline_steps import check_drift
from parking_core.pipeline_values import DriftAssessment
from parking_core.registry import open_registry
from sagemaker_adapter.steps.common import finish, object_store, processing_args


def _arguments(parser) -> None:
    parser.add_argument("--timezone", required=True)
    parser.add_argument("--grid-step-minutes", type=int, required=True)
    parser.add_argument("--drift-p-value", type=float, default=0.05)
    parser.add_argument("--drift-min-effect", type=float, default=0.05)
    parser.add_argument("--reference-days", type=int, default=21)
    parser.add_argument("--force-retrain", default="false")


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
