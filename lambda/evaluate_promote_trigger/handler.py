"""EventBridge "SageMaker Model Package State Change": PendingManualApproval -> evaluate against
production and attach the report; Approved -> promote to the serverless endpoint only if not
worse (else record the refusal); Rejected -> nothing. It never approves anything."""

from parking_core.aws.http import logger, metrics
from parking_core.aws.runtime import runtime
from parking_core.mlops import evaluate_registered_version, on_package_state_change


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    if event.get("detail-type") != "SageMaker Model Package State Change":
        raise ValueError(f"unexpected event type {event.get('detail-type')!r}")
    detail = event["detail"]
    group, version = detail["ModelPackageGroupName"], int(detail["ModelPackageVersion"])
    status = detail["ModelApprovalStatus"]
    rt = runtime()
    outcome = on_package_state_change(
        rt.registry, group, version, status,
        evaluate=lambda: evaluate_registered_version(rt.registry, rt.objects, rt.store, group, version),
        deploy=rt.deployer,
    )
    logger.info("model package state change handled", extra={"group": group, "version": version,
                                                             "status": status, **outcome})
    if outcome.get("action") == "promotion":
        metrics.add_metric(name="Promotions" if outcome["promoted"] else "PromotionsRefused", unit="Count", value=1)
    return outcome
