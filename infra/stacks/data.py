"""Data: the four DynamoDB tables (from parking_core.store.dynamodb's one definition), the data
bucket (the object store: exports, dataset, drift reports, models) and the SageMaker SDK's
artifacts bucket, plus the bucket that receives their access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.guards import skip_cdk_handlers, skip_checks
from infra.pipeline import OBJECT_PREFIX
from infra.settings import InfraSettings
from parking_core.store.dynamodb import table_definitions

ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER,
                   "B": dynamodb.AttributeType.BINARY}
CMK_REASON = ("AWS-managed encryption at rest; a customer-managed KMS key adds cost and key administration "
              "for data that is not personal")
# SageMaker refuses an empty S3 input prefix: the first pipeline run reads these before any export.
SEEDED_PREFIXES = ("dataset", "readings")


def secure_bucket(scope: Construct, id: str, logs: s3.IBucket | None, **kwargs) -> s3.Bucket:
    """Versioned, encrypted, private, TLS only; old versions expire."""
    lifecycle = [s3.LifecycleRule(id="noncurrent-versions", noncurrent_version_expiration=Duration.days(90),
                                  abort_incomplete_multipart_upload_after=Duration.days(7))]
    bucket = s3.Bucket(scope, id, versioned=True, encryption=s3.BucketEncryption.S3_MANAGED,
                       block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                       object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                       server_access_logs_bucket=logs, server_access_logs_prefix=f"s3/{id}/" if logs else None,
                       lifecycle_rules=lifecycle + kwargs.pop("lifecycle_rules", []), **kwargs)
    return bucket


class DataStack(Stack):
    def __init__(self, scope: Construct, id: str, settings: InfraSettings, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        # Access logs of the other buckets and of CloudFront (which writes with ACLs).
        self.logs = s3.Bucket(self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,
                              block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                              object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED, versioned=True,
                              removal_policy=RemovalPolicy.RETAIN,
                              lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(365),
                                                                noncurrent_version_expiration=Duration.days(30))])
        skip_checks(self.logs, {"CKV_AWS_18": "this is the access-log bucket; logging it into itself would loop"})

        self.tables: dict[str, dynamodb.Table] = {}
        for definition in table_definitions(settings.name):
            self.tables[definition["TableName"].removeprefix(f"{settings.name}-")] = self._table(definition)

        self.data = secure_bucket(
            self, "Data", self.logs, removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                # Daily exports are read again by the drift check (last weeks) and consolidation;
                # older ones move to Intelligent-Tiering (no retrieval fee if read again).
                s3.LifecycleRule(id=f"old-{kind}-exports", prefix=f"{OBJECT_PREFIX}/{kind}/",
                                 transitions=[s3.Transition(storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                                                            transition_after=Duration.days(30))])
                for kind in ("readings", "forecasts")
            ])
        self.artifacts = secure_bucket(
            self, "Artifacts", self.logs, removal_policy=RemovalPolicy.RETAIN,
            # Job code and outputs the SageMaker SDK stages per execution; the models the registry
            # points at live in the data bucket, so these can go.
            lifecycle_rules=[s3.LifecycleRule(id="old-job-artifacts", expiration=Duration.days(180))])

        s3deploy.BucketDeployment(
            self, "SeedPrefixes", destination_bucket=self.data, prune=False, retain_on_delete=True,
            sources=[s3deploy.Source.data(f"{OBJECT_PREFIX}/{prefix}/.keep", "") for prefix in SEEDED_PREFIXES])
        skip_cdk_handlers(self)

    def _table(self, definition: dict) -> dynamodb.Table:
        types = {a["AttributeName"]: ATTRIBUTE_TYPES[a["AttributeType"]] for a in definition["AttributeDefinitions"]}

        def key(schema: list[dict], kind: str) -> dynamodb.Attribute | None:
            names = [k["AttributeName"] for k in schema if k["KeyType"] == kind]
            return dynamodb.Attribute(name=names[0], type=types[names[0]]) if names else None

        assert definition["BillingMode"] == "PAY_PER_REQUEST"
        name = definition["TableName"]
        table = dynamodb.Table(
            self, name.title().replace("-", ""), table_name=name,
            partition_key=key(definition["KeySchema"], "HASH"), sort_key=key(definition["KeySchema"], "RANGE"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=RemovalPolicy.RETAIN)
        for index in definition.get("GlobalSecondaryIndexes", []):
            assert index["Projection"]["ProjectionType"] == "ALL"
            table.add_global_secondary_index(index_name=index["IndexName"],
                                             partition_key=key(index["KeySchema"], "HASH"),
                                             sort_key=key(index["KeySchema"], "RANGE"),
                                             projection_type=dynamodb.ProjectionType.ALL)
        skip_checks(table, {"CKV_AWS_119": CMK_REASON})
        return table
