"""The pipeline's IO manager: each MLOps asset's typed value (parking_core.pipeline_values) as
JSON in the object store, under `runs/<run id>/<asset>.json` — the keys the SageMaker step
scripts write too. An input is read from the run that produced it, never from "the latest"
materialization, so two runs at once each see their own values."""


import dagster as dg
from pydantic import BaseModel

from parking_assets.resources import ParkcastResource
from parking_core.pipeline_values import value_key


class PipelineValueIOManager(dg.ConfigurableIOManager):
    parkcast: ParkcastResource

    def handle_output(self, context: dg.OutputContext, obj: BaseModel | None) -> None:
        if obj is None:  # an asset that only records metadata
            return
        if not isinstance(obj, BaseModel):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, "
                            "not a pipeline value (pydantic model)")
        key = value_key(context.run_id, context.asset_key.to_user_string())
        self.parkcast.objects().put_bytes(key, obj.model_dump_json(indent=2).encode())
        context.add_output_metadata({"value": dg.MetadataValue.path(self.parkcast.objects().uri(key))})

    def load_input(self, context: dg.InputContext) -> BaseModel:
        asset = context.asset_key.to_user_string()
        upstream = context.upstream_output
        try:
            run_id = upstream.run_id if upstream is not None else None
        except dg.DagsterInvariantViolationError:  # the upstream asset was not part of this run
            run_id = None
        if not run_id:
            raise dg.Failure(f"{asset} must come from the same pipeline run: materialize it with its "
                             "downstream assets (the daily_pipeline job), not on its own")
        key = value_key(run_id, asset)
        objects = self.parkcast.objects()
        if not objects.exists(key):
            raise dg.Failure(f"run {run_id} holds no value for {asset} ({objects.uri(key)})")
        model = context.dagster_type.typing_type
        return model.model_validate_json(objects.get_bytes(key))
