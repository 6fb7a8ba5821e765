"""ML: the model package group, the SageMaker execution role, the pipeline and serving images,
the pipeline compiled from the asset graph, and its daily EventBridge Scheduler schedule."""

from __future__ import annotations

from aws_cdk import Duration, Fn, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.assets import docker_image
from infra.guards import skip_checks
from infra.pipeline import definition_for_sub
from infra.settings import InfraSettings


def dead_letter_queue(scope: Construct, id: str) -> sqs.Queue:
    """Where events that could not be delivered wait (14 days) for a person; an alarm watches it."""
    queue = sqs.Queue(scope, id, encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                      retention_period=Duration.days(14))
    skip_checks(queue, {"CKV_AWS_27": "encrypted at rest with SQS-managed keys (SSE-SQS); checkov only "
                                      "recognises a KMS key, which would add cost for event copies"})
    return queue


def cron_at(clock: str, settings: InfraSettings) -> scheduler.ScheduleExpression:
    hour, minute = clock.split(":")
    return scheduler.ScheduleExpression.cron(minute=str(int(minute)), hour=str(int(hour)),
                                             time_zone=TimeZone.of(settings.timezone))


class MlStack(Stack):
    def __init__(self, scope: Construct, id: str, settings: InfraSettings, data: s3.IBucket, artifacts: s3.IBucket,
                 **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self, "ModelPackageGroup", model_package_group_name=settings.model_package_group,
            model_package_group_description="parkcast forecaster versions; approved by a person, never automatically")

        self.pipeline_image = docker_image(self, "PipelineImage", "sagemaker_adapter/Dockerfile", settings)
        self.serving_image = docker_image(self, "ServingImage", "serving/Dockerfile", settings)

        # One role for the pipeline, its processing and training jobs, and the endpoint's models.
        self.role = iam.Role(self, "SageMakerRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description="parkcast pipeline jobs and forecast endpoint")
        data.grant_read_write(self.role)
        artifacts.grant_read_write(self.role)
        self.pipeline_image.repository.grant_pull(self.role)
        self.serving_image.repository.grant_pull(self.role)
        region, account = Stack.of(self).region, Stack.of(self).account
        arn = f"arn:{Stack.of(self).partition}:sagemaker:{region}:{account}"
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[f"arn:{Stack.of(self).partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"]))
        self.role.add_to_policy(iam.PolicyStatement(
            # PutMetricData has no resource type: '*' is the only resource IAM accepts; the
            # condition keeps the jobs to SageMaker's namespaces.
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}}))
        self.role.add_to_policy(iam.PolicyStatement(
            # The pipeline starts its steps' jobs as this role, and RegisterModel adds a version.
            actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
                     "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                     "sagemaker:AddTags"],
            resources=[f"{arn}:processing-job/*", f"{arn}:training-job/*"]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
            resources=[f"{arn}:model-package-group/{settings.model_package_group}",
                       f"{arn}:model-package/{settings.model_package_group}/*"]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        self.role.add_to_policy(iam.PolicyStatement(
            # GetAuthorizationToken has no resource type: '*' is required to log in to ECR at all.
            actions=["ecr:GetAuthorizationToken"], resources=["*"]))

        body, used = definition_for_sub(settings)
        values = {"RoleArn": self.role.role_arn, "ArtifactsBucket": artifacts.bucket_name,
                  "DataBucket": data.bucket_name, "PipelineImage": self.pipeline_image.uri,
                  "ServingImage": self.serving_image.uri}
        self.pipeline = sagemaker.CfnPipeline(
            self, "Pipeline", pipeline_name=settings.pipeline_name, role_arn=self.role.role_arn,
            pipeline_description="daily drift check -> retrain -> register (compiled from the Dagster asset graph)",
            pipeline_definition={"PipelineDefinitionBody": Fn.sub(body, {name: values[name] for name in used})})
        self.pipeline.node.add_dependency(self.model_package_group)
        self.pipeline_arn = f"{arn}:pipeline/{settings.pipeline_name}"

        # Daily start through Scheduler's universal target (sagemaker:startPipelineExecution). The
        # execution id is the idempotency token: a retried delivery does not start a second run.
        self.schedule_dlq = dead_letter_queue(self, "PipelineScheduleDlq")
        scheduler.Schedule(
            self, "DailyPipeline", schedule=cron_at(settings.pipeline_time, settings),
            description=f"start {settings.pipeline_name} daily at {settings.pipeline_time} {settings.timezone}",
            target=targets.Universal(
                service="sagemaker", action="startPipelineExecution",
                input=scheduler.ScheduleTargetInput.from_object({
                    "PipelineName": settings.pipeline_name,
                    "ClientRequestToken": scheduler.ContextAttribute.execution_id,
                    "PipelineExecutionDescription": "scheduled daily run"}),
                policy_statements=[iam.PolicyStatement(actions=["sagemaker:StartPipelineExecution"],
                                                       resources=[self.pipeline_arn])],
                dead_letter_queue=self.schedule_dlq, retry_attempts=3, max_event_age=Duration.hours(2)))
