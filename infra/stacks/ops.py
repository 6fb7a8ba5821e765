"""Ops: the alarm topic (with an optional e-mail subscription), every alarm, the pipeline-failure
rule and one CloudWatch dashboard that shows the system at a glance."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.guards import skip_checks
from infra.settings import METRICS_NAMESPACE, SERVICE, InfraSettings

FIVE_MINUTES = Duration.minutes(5)


def app_metric(name: str, statistic: str, period: Duration = FIVE_MINUTES) -> cw.Metric:
    """A metric the handlers publish through Powertools (EMF)."""
    return cw.Metric(namespace=METRICS_NAMESPACE, metric_name=name, dimensions_map={"service": SERVICE},
                     statistic=statistic, period=period)


class OpsStack(Stack):
    def __init__(self, scope: Construct, id: str, settings: InfraSettings, *, functions: dict[str, lambda_.IFunction],
                 api: apigw.IHttpApi, tables: dict[str, dynamodb.ITable], queues: dict[str, sqs.IQueue],
                 pipeline_arn: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.topic = sns.Topic(self, "Alarms", display_name=f"{settings.name} alarms", enforce_ssl=True)
        skip_checks(self.topic, {"CKV_AWS_26": "CloudWatch alarms cannot publish to a topic under the AWS-managed "
                                               "SNS key; alarm texts hold no secrets, so no customer key for them"})
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        self.alarms: dict[str, cw.Alarm] = {}

        def alarm(id: str, metric: cw.IMetric, threshold: float, description: str, *, periods: int = 1,
                  comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                  missing=cw.TreatMissingData.NOT_BREACHING) -> cw.Alarm:
            a = cw.Alarm(self, id, alarm_name=f"{settings.name}-{id}", metric=metric, threshold=threshold,
                         evaluation_periods=periods, comparison_operator=comparison, treat_missing_data=missing,
                         alarm_description=description)
            a.add_alarm_action(cw_actions.SnsAction(self.topic))
            a.add_ok_action(cw_actions.SnsAction(self.topic))
            self.alarms[id] = a
            return a

        for name, fn in functions.items():
            alarm(f"{name}-errors", fn.metric_errors(period=FIVE_MINUTES, statistic="Sum"), 1,
                  f"lambda/{name} raised an error")
            alarm(f"{name}-throttles", fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum"), 1,
                  f"lambda/{name} was throttled (reserved concurrency or the account's quota)")
        alarm("api-5xx", api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"), 1,
              "the API answered 5xx (see the read_api / run_prediction_trigger logs)")
        alarm("api-p99-latency", api.metric_latency(period=FIVE_MINUTES, statistic="p99"), settings.api_p99_latency_ms,
              f"API p99 latency above {settings.api_p99_latency_ms} ms for 15 minutes", periods=3,
              comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD)
        endpoint = {"EndpointName": settings.endpoint_name, "VariantName": "AllTraffic"}

        def endpoint_metric(name: str, statistic: str) -> cw.Metric:
            return cw.Metric(namespace="AWS/SageMaker", metric_name=name, dimensions_map=endpoint,
                             statistic=statistic, period=FIVE_MINUTES)

        alarm("endpoint-invocation-errors", cw.MathExpression(
            expression="e4 + e5", label="endpoint 4xx + 5xx", period=FIVE_MINUTES,
            using_metrics={"e4": endpoint_metric("Invocation4XXErrors", "Sum"),
                           "e5": endpoint_metric("Invocation5XXErrors", "Sum")}), 1,
              "the forecast endpoint answered errors; readings are still stored, forecasts are missing")
        # ModelLatency is in microseconds.
        alarm("endpoint-model-latency", endpoint_metric("ModelLatency", "p99"), settings.endpoint_p99_latency_ms * 1000,
              f"endpoint p99 model latency above {settings.endpoint_p99_latency_ms} ms for 15 minutes", periods=3,
              comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD)
        for name, table in tables.items():
            alarm(f"dynamodb-{name}-throttles", cw.MathExpression(
                expression="r + w", label=f"{name} throttle events", period=FIVE_MINUTES,
                using_metrics={"r": table.metric("ReadThrottleEvents", statistic="Sum", period=FIVE_MINUTES),
                               "w": table.metric("WriteThrottleEvents", statistic="Sum", period=FIVE_MINUTES)}), 1,
                  f"DynamoDB throttled requests on the {name} table")
        pipeline_name = settings.pipeline_name
        alarm("pipeline-failed", cw.Metric(namespace="AWS/Sagemaker/ModelBuildingPipeline",
                                           metric_name="ExecutionFailed", statistic="Sum", period=Duration.hours(1),
                                           dimensions_map={"PipelineName": pipeline_name}), 1,
              f"an execution of {pipeline_name} failed (SageMaker console -> Pipelines for the step)")
        alarm("drift-detected", app_metric("DriftDetected", "Maximum", Duration.hours(1)), 1,
              "the last pipeline run found drift in the parking signal; a retrained version waits for approval")
        # The export runs daily: no successful run in 24 hours is a missing export (no data also alarms).
        alarm("daily-export-missing", app_metric("ExportedReadings", "SampleCount", Duration.days(1)), 1,
              "no daily export in the last 24 hours: the pipeline will see no new days",
              comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD, missing=cw.TreatMissingData.BREACHING)
        # Missing data breaches too: a health check that stopped running must not look healthy.
        every = Duration.minutes(settings.monitor_every_minutes)
        alarm("stale-lots", app_metric("StaleLots", "Maximum", every), 1,
              f"an open car park has sent nothing for {settings.stale_lot_minutes} minutes "
              f"(the lot ids are in the {settings.name}-system-monitor log)", periods=2,
              missing=cw.TreatMissingData.BREACHING)
        for name, queue in queues.items():
            alarm(f"{name}-dead-letters", queue.metric_approximate_number_of_messages_visible(
                period=FIVE_MINUTES, statistic="Maximum"), 1,
                f"events that could not be delivered wait in {name}: read them, fix, redrive")

        # The failure event names the failed execution: a person gets it at once.
        events.Rule(self, "PipelineFailed", description=f"{pipeline_name} execution failed -> alarm topic",
                    event_pattern=events.EventPattern(
                        source=["aws.sagemaker"],
                        detail_type=["SageMaker Model Building Pipeline Execution Status Change"],
                        detail={"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": [pipeline_arn]}),
                    targets=[events_targets.SnsTopic(self.topic, message=events.RuleTargetInput.from_text(
                        f"{pipeline_name} failed: {events.EventField.from_path('$.detail.pipelineExecutionArn')}"))])

        self.dashboard = self._dashboard(settings, functions, api, tables, endpoint_metric)

    def _dashboard(self, settings, functions, api, tables, endpoint_metric) -> cw.Dashboard:
        board = cw.Dashboard(self, "Dashboard", dashboard_name=settings.name, default_interval=Duration.hours(24))

        def graph(title: str, metrics: list[cw.IMetric], width: int = 8) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=metrics, width=width, height=6)

        board.add_widgets(cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=4))
        board.add_widgets(
            graph("API requests and errors", [api.metric_count(period=FIVE_MINUTES),
                                              api.metric_client_error(period=FIVE_MINUTES),
                                              api.metric_server_error(period=FIVE_MINUTES)]),
            graph("API latency (p50, p99)", [api.metric_latency(period=FIVE_MINUTES, statistic="p50"),
                                             api.metric_latency(period=FIVE_MINUTES, statistic="p99")]),
            graph("Readings and forecasts", [app_metric("ReadingsAccepted", "Sum"),
                                             app_metric("ForecastsUnavailable", "Sum")]))
        board.add_widgets(
            graph("Silent car parks", [app_metric("StaleLots", "Maximum")]),
            graph("Drift and promotions", [app_metric("DriftDetected", "Maximum", Duration.hours(1)),
                                           app_metric("Promotions", "Sum", Duration.hours(1)),
                                           app_metric("PromotionsRefused", "Sum", Duration.hours(1))]),
            graph("Daily export (readings)", [app_metric("ExportedReadings", "Sum", Duration.hours(1))]))
        board.add_widgets(
            graph("Lambda errors", [fn.metric_errors(period=FIVE_MINUTES, label=name)
                                    for name, fn in functions.items()]),
            graph("Lambda p99 duration", [fn.metric_duration(period=FIVE_MINUTES, statistic="p99", label=name)
                                          for name, fn in functions.items()]),
            graph("DynamoDB consumed capacity", [
                t.metric(m, statistic="Sum", period=FIVE_MINUTES, label=f"{name} {m[8:-13].lower()}")
                for name, t in tables.items() for m in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")]))
        board.add_widgets(
            graph("Forecast endpoint", [endpoint_metric("Invocations", "Sum"),
                                        endpoint_metric("Invocation4XXErrors", "Sum"),
                                        endpoint_metric("Invocation5XXErrors", "Sum")]),
            graph("Endpoint model latency p99 (µs)", [endpoint_metric("ModelLatency", "p99")]),
            graph("Pipeline executions", [
                cw.Metric(namespace="AWS/Sagemaker/ModelBuildingPipeline", metric_name=m,
                          dimensions_map={"PipelineName": settings.pipeline_name}, statistic="Sum",
                          period=Duration.hours(1)) for m in ("ExecutionSucceeded", "ExecutionFailed")]))
        return board
