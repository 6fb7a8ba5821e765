"""Promotion: a sensor sees Approved versions without a decision and runs the promotion job,
which promotes only if the version is not worse than production (else records why)."""

import dagster as dg

from parking_assets.resources import ParkcastResource, PipelineConfig, RegistryResource
from parking_core.forecasting.models_dir import deploy_locally
from parking_core.mlops import pending_promotions, promote_if_better


class PromotionConfig(dg.Config):
    version: int


@dg.op
def promote_version(context: dg.OpExecutionContext, config: PromotionConfig, parkcast: ParkcastResource,
                    pipeline: PipelineConfig, registry: RegistryResource) -> None:
    decision = promote_if_better(registry.registry(), pipeline.model_group, config.version,
                                 lambda version: deploy_locally(parkcast.settings, version))
    context.log.info(f"version {config.version}: {decision}")
    context.add_output_metadata({"promoted": decision["promoted"], "reason": decision["reason"]})


@dg.job(description="Promote one Approved version if it is not worse than production.")
def promotion_job():
    promote_version()


@dg.sensor(job=promotion_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def approved_versions_sensor(pipeline: PipelineConfig, registry: RegistryResource):
    waiting = pending_promotions(registry.registry(), pipeline.model_group)
    if not waiting:
        return dg.SkipReason("no Approved version waiting for a promotion decision")
    for v in waiting:
        yield dg.RunRequest(
            run_key=f"promote-{pipeline.model_group}-{v.version}",
            run_config={"ops": {"promote_version": {"config": {"version": v.version}}}},
        )
