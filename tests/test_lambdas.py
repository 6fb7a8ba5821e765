"""The Lambda handlers with realistic events (API Gateway HTTP API v2, EventBridge model-package
state change, EventBridge schedule) against DynamoDB, S3 and SageMaker on moto's server on
loopback. The forecast endpoint's answers are computed by the real serving app."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import boto3
import pytest
import requests
from conftest import REPO, load_sample
from fastapi.testclient import TestClient

from parkcast.processes import free_port
from parking_core.contracts import Reading
from parking_core.forecasting.invocation import build_instance

REGION = "eu-west-2"
BUCKET = "parkcast-lambda-test"
GROUP = "parkcast-forecaster"
LOTS = ["Shopping", "Broad Street"]
ROLE = "arn:aws:iam::123456789012:role/parkcast-sagemaker"


def load_handler(name: str):
    spec = importlib.util.spec_from_file_location(f"lambda_{name}", REPO / "lambda" / name / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Context:
    function_name: str = "parkcast-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:parkcast-test"
    aws_request_id: str = "req-1"


def http_event(method: str, path: str, body=None, headers=None, query: dict | None = None,
               base64_body: bool = False) -> dict:
    raw = json.dumps(body) if isinstance(body, dict | list) else body
    if base64_body and raw is not None:
        raw = base64.b64encode(raw.encode()).decode()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "queryStringParameters": query,
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "stage": "$default",
            "requestId": str(uuid.uuid4()), "routeKey": "$default", "time": "22/Nov/2016:11:00:00 +0000",
            "timeEpoch": 1479812400000,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1",
                     "userAgent": "parkcast-edge"},
        },
        "body": raw,
        "isBase64Encoded": base64_body,
    }


def state_change_event(version: int, status: str) -> dict:
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{GROUP}/{version}"
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker", "account": "123456789012", "time": "2016-11-22T12:00:00Z", "region": REGION,
        "resources": [arn],
        "detail": {"ModelPackageGroupName": GROUP, "ModelPackageVersion": version, "ModelPackageArn": arn,
                   "ModelApprovalStatus": status, "CreationTime": 1479812400000},
    }


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """moto on loopback, PARKCAST_* set as the CDK stack sets them, two sample lots in DynamoDB."""
    from moto.server import ThreadedMotoServer

    from parking_core.aws.runtime import runtime
    from parking_core.store.dynamodb import DynamoDBStore

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "PARKCAST_STORE": "dynamodb", "PARKCAST_DYNAMODB_TABLE_PREFIX": "lt",
           "PARKCAST_OBJECT_STORE_URL": f"s3://{BUCKET}/parkcast", "PARKCAST_REGISTRY": "sagemaker",
           "PARKCAST_PREDICTOR": "sagemaker", "PARKCAST_ENDPOINT_NAME": "parkcast-forecaster",
           "PARKCAST_AWS_REGION": REGION, "PARKCAST_SERVING_IMAGE": "123456789012.dkr.ecr.eu-west-2.amazonaws.com/p:1",
           "PARKCAST_SAGEMAKER_ROLE_ARN": ROLE, "POWERTOOLS_METRICS_NAMESPACE": "parkcast"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    runtime.cache_clear()
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    store = DynamoDBStore(table_prefix="lt", region=REGION)
    store.create_tables()
    # Enough history for a forecast and the evaluation window (moto's DynamoDB slows down with
    # table size, so not the whole sample): Shopping from 24 Oct, Broad Street its last week.
    first_day = {"Shopping": date(2016, 10, 24), "Broad Street": date(2016, 11, 14)}
    load_sample(store, lambda r: r.lot_id in first_day and r.observed_at.date() >= first_day[r.lot_id])
    yield store
    runtime.cache_clear()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


def queue_endpoint_answers(*bodies: str) -> None:
    requests.post(f"{os.environ['AWS_ENDPOINT_URL']}/moto-api/static/sagemaker/endpoint-results",
                  json={"region": REGION, "results": [{"Body": b, "ContentType": "application/json"}
                                                      for b in bodies]}, timeout=10).raise_for_status()


def record_endpoint_requests(client) -> list[dict]:
    """Every request this boto3 client puts on the wire to the SageMaker runtime, as sent (URL,
    headers, body parsed): what the handler asked for, whatever moto answers."""
    sent: list[dict] = []

    def record(request, **_):
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        sent.append({"url": request.url, "headers": headers, "body": json.loads(request.body)})

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", record)
    return sent


def test_read_api(aws):
    read_api = load_handler("read_api")
    r = read_api.handler(http_event("GET", "/v1/lots"), Context())
    assert r["statusCode"] == 200
    assert sorted(lot["lot_id"] for lot in json.loads(r["body"])) == sorted(LOTS)
    r = read_api.handler(http_event("GET", "/v1/lots", query={"trend_hours": "24"}), Context())
    assert all(len(lot["trend"]) >= 10 for lot in json.loads(r["body"]))
    r = read_api.handler(http_event("GET", "/v1/status"), Context())
    assert r["statusCode"] == 200 and json.loads(r["body"])["models"]["group"] == GROUP
    r = read_api.handler(http_event("GET", "/v1/lots/Broad%20Street"), Context())
    assert r["statusCode"] == 200 and json.loads(r["body"])["latest"]["occupancy_rate"] > 0
    r = read_api.handler(http_event("GET", "/v1/lots/Shopping/readings",
                                    query={"start": "2016-11-21T00:00:00Z", "end": "2016-11-22T00:00:00Z"}), Context())
    assert r["statusCode"] == 200 and json.loads(r["body"])["count"] == 18
    for path, query, status in [("/v1/lots/NOPE", None, 404),
                                ("/v1/lots/Shopping/readings", {"limit": "x"}, 422),
                                ("/v1/lots/Shopping/readings", {"start": "yesterday"}, 422),
                                ("/v1/lots", {"trend_hours": "999"}, 422),
                                ("/v2/nothing", None, 404)]:
        r = read_api.handler(http_event("GET", path, query=query), Context())
        assert r["statusCode"] == status and "error" in json.loads(r["body"])


def test_run_prediction_trigger_stores_the_reading_then_the_forecast(aws, tft_package):
    from parking_core.aws.runtime import runtime
    from parking_core.devices import register_device
    from parking_core.serving.app import create_serving_app

    store = aws
    trigger = load_handler("run_prediction_trigger")
    _, key = register_device(store, "Shopping", "cam-shop")
    last = store.latest_reading("Shopping")
    new = Reading(lot_id="Shopping", device_id="cam-shop", observed_at=last.observed_at + timedelta(minutes=30),
                  capacity=last.capacity, occupied=min(last.capacity, last.occupied + 20))
    # The serving container's real answer for exactly what the handler will send.
    history = store.query_readings("Shopping", new.observed_at - timedelta(days=36), new.observed_at)
    instance = build_instance(store.get_lot("Shopping"), [*history, new], new.observed_at)
    served = TestClient(create_serving_app(tft_package.path)).post("/invocations", json={"instances": [instance]})
    queue_endpoint_answers(served.text)

    body = new.model_dump(mode="json", exclude_none=True)
    sent = record_endpoint_requests(runtime().predictor.client)  # the client the handler's runtime reuses
    r = trigger.handler(http_event("POST", "/v1/readings", body, {"x-api-key": key}), Context())
    assert r["statusCode"] == 201, r["body"]
    # The request the handler sent: the configured endpoint, JSON both ways, one instance built
    # from the stored history plus the new reading, at the reading's instant.
    (request,) = sent
    assert request["url"].endswith("/endpoints/parkcast-forecaster/invocations")
    assert request["headers"]["Content-Type"] == request["headers"]["Accept"] == "application/json"
    assert request["body"] == {"instances": [instance]}
    (sent_instance,) = request["body"]["instances"]
    assert sent_instance["at"] == new.observed_at.isoformat() and sent_instance["lot"]["lot_id"] == "Shopping"
    assert sent_instance["history"]["observed_at"][-1] == int(new.observed_at.timestamp())
    assert sent_instance["history"]["occupied"][-1] == new.occupied
    assert len(sent_instance["history"]["occupied"]) == len(history) + 1
    answer = json.loads(r["body"])
    assert answer["accepted"] == 1 and answer["forecasts"][0]["status"] == "ok"
    assert answer["forecasts"][0]["forecast"] == served.json()["forecasts"][0]
    assert store.latest_forecast("Shopping").model_dump(mode="json") == served.json()["forecasts"][0]

    # Endpoint failure: the reading is stored, the forecast marked unavailable (base64 body too).
    queue_endpoint_answers("<html>502 Bad Gateway</html>")
    later = {**body, "observed_at": (new.observed_at + timedelta(minutes=30)).isoformat(), "occupied": 100}
    r = trigger.handler(http_event("POST", "/v1/readings", later, {"x-api-key": key}, base64_body=True), Context())
    assert r["statusCode"] == 201
    (sent_instance,) = sent[1]["body"]["instances"]
    assert len(sent) == 2 and sent_instance["at"] == later["observed_at"]
    assert sent_instance["history"]["occupied"][-2:] == [new.occupied, 100]
    (entry,) = json.loads(r["body"])["forecasts"]
    assert entry["status"] == "unavailable" and "not a forecast" in entry["reason"]
    assert store.latest_reading("Shopping").occupied == 100

    # Bad input: clear 4xx, nothing stored.
    count = store.count_readings("Shopping")
    for event, status in [
        (http_event("POST", "/v1/readings", {**body, "occupied": -1}, {"x-api-key": key}), 422),
        (http_event("POST", "/v1/readings", "{not json", {"x-api-key": key}), 422),
        (http_event("POST", "/v1/readings", body), 401),
        (http_event("POST", "/v1/readings", {**body, "lot_id": "Broad Street"}, {"x-api-key": key}), 403),
    ]:
        r = trigger.handler(event, Context())
        assert r["statusCode"] == status and json.loads(r["body"])["error"]["message"]
    assert store.count_readings("Shopping") == count


def test_daily_export_is_idempotent_and_in_the_pipeline_layout(aws):
    from parking_core.aws.runtime import runtime
    from parking_core.export import exported_days, read_partition

    export = load_handler("daily_export_to_s3")
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": "2016-11-22T01:00:00Z", "region": REGION,
             "resources": [f"arn:aws:events:{REGION}:123456789012:rule/parkcast-daily-export"], "detail": {}}
    first = export.handler(event, Context())
    assert first["day"] == "2016-11-21" and first["readings"] == 36 and first["written"]
    again = export.handler(event, Context())
    assert again["readings"] == 36 and again["written"] == []  # a rerun changes nothing
    objects = runtime().objects
    assert date(2016, 11, 21) in exported_days(objects)
    assert read_partition(objects, "readings", date(2016, 11, 21)).height == 36
    assert aws.query_readings("Shopping", *_utc_day(date(2016, 11, 21))).__len__() == 18
    # A day that is not over is refused: merged as complete, its later readings would be skipped.
    from datetime import UTC, datetime

    with pytest.raises(ValueError, match="is not over yet"):
        export.handler({"day": datetime.now(UTC).date().isoformat()}, Context())

    # Readings of a merged day that arrive late are exported again and merged again.
    from parking_core import dataset

    day = date(2016, 11, 21)
    dataset.consolidate(objects, dataset.new_days(objects))
    merged = dataset.load(objects).height
    assert dataset.new_days(objects) == []
    late = aws.query_readings("Shopping", *_utc_day(day))[0]
    aws.put_readings([late.model_copy(update={"device_id": "late-cam"})])
    assert export.handler({"day": day.isoformat()}, Context())["readings"] == 37
    assert dataset.new_days(objects) == [day]
    dataset.consolidate(objects, dataset.new_days(objects))
    assert dataset.load(objects).height == merged + 1 and dataset.new_days(objects) == []


def _utc_day(day: date):
    from datetime import UTC, datetime, time

    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def test_evaluate_promote_trigger(aws, gbm_package):
    from parking_core import dataset
    from parking_core.aws.runtime import runtime
    from parking_core.export import export_day
    from parking_core.forecasting.package import upload_package
    from parking_core.registry import ApprovalStatus

    rt = runtime()
    days = [date(2016, 11, 14) + timedelta(days=i) for i in range(7)]
    for day in days:
        export_day(aws, rt.objects, day)
    dataset.consolidate(rt.objects, days)
    uri = upload_package(rt.objects, gbm_package.path, "models/run-1")
    reg = rt.registry
    v1 = reg.register(GROUP, uri, {"val_intraday_mae": 0.03}, {"data_hash": "d", "code_version": "c",
                                                                 "run_id": "run-1", "model_version": "m1"})
    trigger = load_handler("evaluate_promote_trigger")
    sm = boto3.client("sagemaker", region_name=REGION)

    # New pending version -> evaluated, report attached; a repeated event changes nothing.
    out = trigger.handler(state_change_event(v1.version, "PendingManualApproval"), Context())
    assert out["action"] == "evaluated" and out["evaluation"]["candidate_mae"] > 0
    assert reg.get(GROUP, v1.version).evaluation["candidate_mae"] == out["evaluation"]["candidate_mae"]
    assert trigger.handler(state_change_event(v1.version, "PendingManualApproval"), Context())["action"] == "none"
    assert reg.get(GROUP, v1.version).status == ApprovalStatus.PENDING  # never approved by the Lambda

    # A person approves -> promoted: model, serverless endpoint config, endpoint.
    reg.set_status(GROUP, v1.version, ApprovalStatus.APPROVED, "ana")
    out = trigger.handler(state_change_event(v1.version, "Approved"), Context())
    assert out["action"] == "promotion" and out["promoted"], out
    endpoint = sm.describe_endpoint(EndpointName="parkcast-forecaster")
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["ExecutionRoleArn"] == ROLE
    # ... serving the approved version's package in the serving image.
    container = model["PrimaryContainer"]
    assert container["Image"] == os.environ["PARKCAST_SERVING_IMAGE"]
    assert container["ModelDataSource"]["S3DataSource"]["S3Uri"] == uri.rstrip("/") + "/"
    assert container["Environment"]["PARKCAST_MODEL_VERSION"] == str(v1.version)
    assert reg.production(GROUP).version == v1.version

    # A version found worse on the evaluation window, approved: refused, endpoint untouched.
    v2 = reg.register(GROUP, uri, {"val_intraday_mae": 0.05}, {"data_hash": "d", "code_version": "c",
                                                                 "run_id": "run-2", "model_version": "m2"})
    reg.attach_evaluation(GROUP, v2.version, {**out_evaluation(reg, v1.version), "candidate_mae": 0.09,
                                              "production_mae": 0.03, "production_version": "m1"})
    reg.set_status(GROUP, v2.version, ApprovalStatus.APPROVED, "bob")
    out = trigger.handler(state_change_event(v2.version, "Approved"), Context())
    assert out["action"] == "promotion" and not out["promoted"] and "worse than production" in out["reason"]
    assert sm.describe_endpoint(EndpointName="parkcast-forecaster")["EndpointConfigName"] == \
        endpoint["EndpointConfigName"]
    assert reg.production(GROUP).version == v1.version
    assert "worse" in reg.get(GROUP, v2.version).promotion["reason"]

    # Rejected -> nothing.
    v3 = reg.register(GROUP, uri, {}, {"run_id": "run-3"})
    reg.set_status(GROUP, v3.version, ApprovalStatus.REJECTED, "no")
    assert trigger.handler(state_change_event(v3.version, "Rejected"), Context())["action"] == "none"
    with pytest.raises(ValueError, match="unexpected event type"):
        trigger.handler({"detail-type": "Scheduled Event", "detail": {}}, Context())


def out_evaluation(reg, version: int) -> dict:
    return dict(reg.get(GROUP, version).evaluation)


def test_handlers_need_neither_torch_nor_dagster():
    """Import every handler and every module its code paths load: none of them pulls in torch,
    lightning, pytorch-forecasting, dagster, alibi-detect or the SageMaker SDK."""
    code = """
import importlib.util, sys
for name in ['run_prediction_trigger', 'read_api', 'evaluate_promote_trigger', 'daily_export_to_s3',
             'system_monitor']:
    spec = importlib.util.spec_from_file_location(name, 'lambda/' + name + '/handler.py')
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
import parking_core.dataset, parking_core.forecasting.backtest, parking_core.forecasting.serve, parking_core.mlops
import parking_core.store.dynamodb, parking_core.registry.sagemaker, parking_core.serving.app, s3fs, onnxruntime
import parking_core.monitoring
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'pytorch_forecasting', 'dagster',
                                                         'alibi_detect', 'sagemaker'})
print(heavy or 'ok')
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
