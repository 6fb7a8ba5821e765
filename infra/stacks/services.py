"""Services: the Lambda functions of lambda/, the HTTP API in front of two of them, the daily
export and the health-check schedules, the rule that hands model-package state changes to
evaluate-promote, and the dashboard's files (with this API's URL) in the web bucket."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from infra.assets import ROOT, function_code
from infra.guards import skip_cdk_handlers, skip_checks
from infra.pipeline import OBJECT_PREFIX
from infra.settings import METRICS_NAMESPACE, SERVICE, InfraSettings
from infra.stacks.ml import cron_at, dead_letter_queue

LOG_KMS_REASON = "CloudWatch Logs encrypts at rest by default; the logs hold no secrets or personal data"
NO_VPC_REASON = "calls only AWS APIs (DynamoDB, S3, SageMaker) over TLS; a VPC would add NAT cost and nothing else"
ENV_KMS_REASON = "the environment holds names and ARNs, no secrets (device keys are hashed in DynamoDB)"
READ_ROUTES = ["/v1/lots", "/v1/lots/{lot_id}", "/v1/lots/{lot_id}/forecast", "/v1/lots/{lot_id}/readings",
               "/v1/status"]


@dataclass
class FunctionSpec:
    memory_mb: int
    timeout: Duration
    asynchronous: bool  # invoked by EventBridge or Scheduler: retries, a dead-letter queue
    reserved: int | None = None
    env: dict[str, str] = field(default_factory=dict)


class ServicesStack(Stack):
    def __init__(self, scope: Construct, id: str, settings: InfraSettings, *, tables: dict[str, dynamodb.ITable],
                 data: s3.IBucket, sagemaker_role: iam.IRole, serving_image_uri: str,
                 web_bucket: s3.IBucket, distribution: cloudfront.IDistribution, web_origin: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.settings = settings
        partition, region, account = self.partition, self.region, self.account
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        group = settings.model_package_group
        endpoint = settings.endpoint_name
        common = {
            "PARKCAST_STORE": "dynamodb", "PARKCAST_DYNAMODB_TABLE_PREFIX": settings.name,
            "PARKCAST_AWS_REGION": settings.region, "PARKCAST_OBJECT_STORE_URL": f"s3://{data.bucket_name}/{OBJECT_PREFIX}",
            "PARKCAST_REGISTRY": "sagemaker", "PARKCAST_MODEL_GROUP": group, "PARKCAST_ENDPOINT_NAME": endpoint,
            "POWERTOOLS_SERVICE_NAME": SERVICE, "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        specs = {
            "run_prediction_trigger": FunctionSpec(
                512, Duration.seconds(29), False, settings.ingest_reserved_concurrency or None,
                {"PARKCAST_PREDICTOR": "sagemaker"}),
            "read_api": FunctionSpec(512, Duration.seconds(29), False),
            "daily_export_to_s3": FunctionSpec(2048, Duration.minutes(10), True, 1),
            # One at a time: two promotions racing on the endpoint would leave either one in place.
            "evaluate_promote_trigger": FunctionSpec(3008, Duration.minutes(10), True, 1, {
                "PARKCAST_SERVING_IMAGE": serving_image_uri, "PARKCAST_SAGEMAKER_ROLE_ARN": sagemaker_role.role_arn,
                "PARKCAST_SERVERLESS_MEMORY_MB": str(settings.endpoint_memory_mb),
                "PARKCAST_SERVERLESS_MAX_CONCURRENCY": str(settings.endpoint_max_concurrency)}),
            "system_monitor": FunctionSpec(256, Duration.seconds(60), True, None,
                                           {"PARKCAST_STALE_LOT_MINUTES": str(settings.stale_lot_minutes)}),
        }
        self.functions: dict[str, lambda_.Function] = {}
        self.dead_letter_queues = {}
        for name, spec in specs.items():
            self.functions[name] = self._function(name, spec, {**common, **spec.env})
        fn = self.functions

        # -- permissions: what each core function touches, nothing more ---------------------
        readers = ("lots", "readings", "forecasts")
        for name in ("read_api", "daily_export_to_s3", "evaluate_promote_trigger", "system_monitor"):
            for table in readers:
                tables[table].grant_read_data(fn[name])
        tables["lots"].grant_read_data(fn["run_prediction_trigger"])
        tables["devices"].grant_read_data(fn["run_prediction_trigger"])
        tables["readings"].grant_read_write_data(fn["run_prediction_trigger"])
        tables["forecasts"].grant_read_write_data(fn["run_prediction_trigger"])
        for name in ("read_api", "evaluate_promote_trigger", "system_monitor"):
            data.grant_read(fn[name], f"{OBJECT_PREFIX}/*")
        for kind in ("readings", "forecasts"):
            data.grant_read_write(fn["daily_export_to_s3"], f"{OBJECT_PREFIX}/{kind}/*")
        fn["run_prediction_trigger"].add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:InvokeEndpoint"], resources=[f"{sm}:endpoint/{endpoint}"]))
        group_arns = [f"{sm}:model-package-group/{group}", f"{sm}:model-package/{group}/*"]
        for name in ("read_api", "evaluate_promote_trigger"):
            fn[name].add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage", "sagemaker:ListTags"],
                resources=group_arns))
            fn[name].add_to_role_policy(iam.PolicyStatement(
                # ListModelPackages has no resource type in IAM: '*' is the only resource it accepts.
                actions=["sagemaker:ListModelPackages"], resources=["*"]))
        evaluate = fn["evaluate_promote_trigger"]
        evaluate.add_to_role_policy(iam.PolicyStatement(
            # The evaluation report goes into the version's metadata; the production tag on the group.
            actions=["sagemaker:UpdateModelPackage", "sagemaker:AddTags", "sagemaker:DeleteTags"],
            resources=group_arns))
        evaluate.add_to_role_policy(iam.PolicyStatement(
            # ServerlessDeployer: names are "<endpoint>-v<version>-<hash>[-m<memory>-c<concurrency>]".
            actions=["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint",
                     "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint"],
            resources=[f"{sm}:model/{endpoint}-*", f"{sm}:endpoint-config/{endpoint}-*", f"{sm}:endpoint/{endpoint}"]))
        sagemaker_role.grant_pass_role(evaluate)

        # -- HTTP API ------------------------------------------------------------------------
        self.api = apigw.HttpApi(
            self, "Api", api_name=f"{settings.name}-api", create_default_stage=False,
            cors_preflight=apigw.CorsPreflightOptions(
                allow_origins=[web_origin], allow_methods=[apigw.CorsHttpMethod.GET, apigw.CorsHttpMethod.POST],
                allow_headers=["content-type", "x-api-key"], max_age=Duration.hours(1)))
        access_logs = self._log_group("ApiAccessLogs", f"/aws/apigateway/{settings.name}-api")
        self.stage = apigw.HttpStage(self, "DefaultStage", http_api=self.api, stage_name="$default", auto_deploy=True,
                                     throttle=apigw.ThrottleSettings(rate_limit=settings.api_rate_limit,
                                                                     burst_limit=settings.api_burst_limit))
        self.stage.node.default_child.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn, format=ACCESS_LOG_FORMAT)
        ingest = integrations.HttpLambdaIntegration("Ingest", fn["run_prediction_trigger"])
        read = integrations.HttpLambdaIntegration("Read", fn["read_api"])
        routes = self.api.add_routes(path="/v1/readings", methods=[apigw.HttpMethod.POST], integration=ingest)
        for path in READ_ROUTES:
            routes += self.api.add_routes(path=path, methods=[apigw.HttpMethod.GET], integration=read)
        for route in routes:
            skip_checks(route, {"CKV_AWS_309": "POST checks the device's x-api-key in the Lambda (hashed keys in "
                                               "DynamoDB); the GET routes are the public dashboard's read API"})
        self.api_url = self.api.api_endpoint
        CfnOutput(self, "ApiUrl", value=self.api_url, description="api_url for the edge daemons (edge.toml)")

        # -- schedules and events ------------------------------------------------------------
        at_time = scheduler.ScheduleTargetInput.from_object({"time": scheduler.ContextAttribute.scheduled_time})
        self.schedule_dlq = dead_letter_queue(self, "ScheduleDlq")
        scheduler.Schedule(
            self, "DailyExport", schedule=cron_at(settings.export_time, settings),
            description=f"export the previous UTC day at {settings.export_time} {settings.timezone}",
            target=scheduler_targets.LambdaInvoke(fn["daily_export_to_s3"], input=at_time, retry_attempts=3,
                                                  max_event_age=Duration.hours(6), dead_letter_queue=self.schedule_dlq))
        scheduler.Schedule(
            self, "HealthCheck",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(settings.monitor_every_minutes)),
            description="silent car parks and the last drift decision -> CloudWatch metrics",
            target=scheduler_targets.LambdaInvoke(fn["system_monitor"], input=at_time, retry_attempts=0,
                                                  max_event_age=Duration.minutes(5),
                                                  dead_letter_queue=self.schedule_dlq))
        self.promotion_rule = events.Rule(
            self, "ModelPackageStateChange",
            description=f"{group} versions -> evaluate (pending) or promote (approved)",
            event_pattern=events.EventPattern(source=["aws.sagemaker"],
                                              detail_type=["SageMaker Model Package State Change"],
                                              detail={"ModelPackageGroupName": [group]}),
            targets=[events_targets.LambdaFunction(evaluate, retry_attempts=4, max_event_age=Duration.hours(6),
                                                   dead_letter_queue=self.dead_letter_queues["evaluate_promote_trigger"])])

        # -- the dashboard, pointed at this API ----------------------------------------------
        s3deploy.BucketDeployment(
            self, "Dashboard", destination_bucket=web_bucket, distribution=distribution, distribution_paths=["/*"],
            sources=[s3deploy.Source.asset(str(ROOT / "web"), exclude=["index.html"]),
                     s3deploy.Source.data("index.html", dashboard_html(self.api_url))],
            memory_limit=256)
        skip_cdk_handlers(self)

    def _log_group(self, id: str, name: str) -> logs.LogGroup:
        group = logs.LogGroup(self, id, log_group_name=name, removal_policy=RemovalPolicy.DESTROY)
        group.node.default_child.retention_in_days = self.settings.log_retention_days
        skip_checks(group, {"CKV_AWS_158": LOG_KMS_REASON})
        return group

    def _function(self, name: str, spec: FunctionSpec, env: dict[str, str]) -> lambda_.Function:
        function_name = f"{self.settings.name}-{name.replace('_', '-')}"
        code, handler, runtime = function_code(self, name, self.settings)
        dlq = None
        if spec.asynchronous:
            dlq = self.dead_letter_queues[name] = dead_letter_queue(self, f"{_camel(name)}Dlq")
        function = lambda_.Function(
            self, _camel(name), function_name=function_name, code=code, handler=handler, runtime=runtime,
            architecture=lambda_.Architecture.X86_64, memory_size=spec.memory_mb, timeout=spec.timeout,
            environment=env, tracing=lambda_.Tracing.ACTIVE, reserved_concurrent_executions=spec.reserved,
            log_group=self._log_group(f"{_camel(name)}Logs", f"/aws/lambda/{function_name}"),
            dead_letter_queue=dlq, retry_attempts=2 if spec.asynchronous else None,
            description=f"lambda/{name}")
        reasons = {"CKV_AWS_117": NO_VPC_REASON, "CKV_AWS_173": ENV_KMS_REASON}
        if not spec.asynchronous:
            reasons["CKV_AWS_116"] = "invoked synchronously by API Gateway: the caller gets the error, nothing to queue"
        if spec.reserved is None:
            reasons["CKV_AWS_115"] = ("no cap: API Gateway's stage throttling bounds it" if not spec.asynchronous
                                      else "a 5-minute schedule runs at most one at a time")
        skip_checks(function, reasons)
        return function


# The access log line, one JSON object per request ($context variables of HTTP APIs).
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime",'
    '"method":"$context.httpMethod","route":"$context.routeKey","status":"$context.status",'
    '"bytes":"$context.responseLength","latencyMs":"$context.responseLatency",'
    '"integrationError":"$context.integrationErrorMessage"}')


def dashboard_html(api_url: str) -> str:
    """web/index.html with the API's URL in its `parkcast-api` meta tag (read by app.js)."""
    html = (ROOT / "web" / "index.html").read_text()
    tag = re.compile(r'<meta name="parkcast-api" content="[^"]*">')
    if not tag.search(html):
        raise ValueError('web/index.html has no <meta name="parkcast-api" content="..."> tag')
    return tag.sub(f'<meta name="parkcast-api" content="{api_url}">', html, count=1)


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))
