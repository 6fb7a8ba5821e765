"""CheckDataDrift: the drift test and the retrain condition. Writes drift/<day>/report.* and
pipeline/decision.json (the property file RetrainNeeded reads) plus pipeline/last_run.json."""

from __future__ import annotations

import json

from parking_core.config import Settings
from parking_core.pipeline_steps import check_drift
from parking_core.registry import open_registry
from sagemaker_adapter.steps.common import object_store, processing_args, publish


def _arguments(parser) -> None:
    parser.add_argument("--timezone", required=True)
    parser.add_argument("--grid-step-minutes", type=int, required=True)
    parser.add_argument("--drift-p-value", type=float, default=0.05)
    parser.add_argument("--drift-min-effect", type=float, default=0.05)
    parser.add_argument("--reference-days", type=int, default=21)
    parser.add_argument("--force-retrain", default="false")


def main(argv=None) -> dict:
    args = processing_args(__doc__, _arguments, argv)
    settings = Settings()  # PARKCAST_REGISTRY, PARKCAST_MODEL_GROUP, ... from the step's environment
    check = check_drift(
        object_store(args.objects), open_registry(settings), settings.model_group, args.timezone,
        args.grid_step_minutes, reference_days=args.reference_days, p_value=args.drift_p_value,
        min_effect=args.drift_min_effect, force=args.force_retrain.lower() == "true", run_id=args.run_id,
    )
    publish(args.objects, args.out, "drift")
    publish(args.objects, args.out, "pipeline")
    decision = check.to_dict()
    (args.out / "pipeline" / "decision.json").write_text(json.dumps(decision, indent=2))
    print(check.decision.summary, flush=True)
    return decision


if __name__ == "__main__":
    main()
