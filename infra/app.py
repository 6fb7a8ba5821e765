"""The CDK app: five stacks split by concern, wired in dependency order.

    Data (tables, buckets) -> Ml (registry, role, images, pipeline, its schedule)
    Data -> Web (dashboard bucket + CloudFront)
    Data, Ml, Web -> Services (Lambdas, HTTP API, export + health schedules, promotion rule, dashboard files)
    all -> Ops (alarms, SNS, dashboard)

Run by the CDK CLI through cdk.json (`npx cdk synth|deploy` in infra/), or build in-process
with `build(App(context=...))` as the tests do."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python app.py` from infra/: the repo's packages come first
    sys.path.insert(0, str(ROOT))
# jsii warns on every start that Node 20 is past end-of-life (the machines have Node 20).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Environment, Stack, Tags  # noqa: E402

from infra.settings import InfraSettings  # noqa: E402
from infra.stacks.data import DataStack  # noqa: E402
from infra.stacks.ml import MlStack  # noqa: E402
from infra.stacks.ops import OpsStack  # noqa: E402
from infra.stacks.services import ServicesStack  # noqa: E402
from infra.stacks.web import WebStack  # noqa: E402

STACKS = ("ParkcastData", "ParkcastMl", "ParkcastWeb", "ParkcastServices", "ParkcastOps")


def build(app: App) -> dict[str, Stack]:
    settings = InfraSettings.from_context(app.node.try_get_context)
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=settings.region)
    data = DataStack(app, "ParkcastData", settings, env=env, description="parkcast: DynamoDB tables and S3 buckets")
    ml = MlStack(app, "ParkcastMl", settings, data=data.data, artifacts=data.artifacts, env=env,
                 description="parkcast: model registry, SageMaker role, images, pipeline and its schedule")
    web = WebStack(app, "ParkcastWeb", settings, logs=data.logs, env=env,
                   description="parkcast: dashboard bucket behind CloudFront")
    services = ServicesStack(
        app, "ParkcastServices", settings, tables=data.tables, data=data.data, sagemaker_role=ml.role,
        serving_image_uri=ml.serving_image.uri, web_bucket=web.bucket, distribution=web.distribution,
        web_origin=web.origin, env=env,
        description="parkcast: Lambda functions, HTTP API, schedules, promotion rule, dashboard files")
    queues = {"pipeline-schedule": ml.schedule_dlq, "lambda-schedules": services.schedule_dlq,
              **{name.replace("_", "-"): q for name, q in services.dead_letter_queues.items()}}
    ops = OpsStack(app, "ParkcastOps", settings, functions=services.functions, api=services.api, tables=data.tables,
                   queues=queues, pipeline_arn=ml.pipeline_arn, env=env,
                   description="parkcast: alarms, alarm topic, CloudWatch dashboard")
    Tags.of(app).add("project", "parkcast")
    return {s.stack_name: s for s in (data, ml, web, services, ops)}


if __name__ == "__main__":
    app = App()
    build(app)
    app.synth()
