"""POST /v1/readings on API Gateway (HTTP API, payload v2): validate -> store (DynamoDB) ->
recent history -> SageMaker endpoint -> store the forecast -> answer with it. When the endpoint
fails the reading is still stored and the answer says the forecast is unavailable."""

from datetime import timedelta

from parking_core import service
from parking_core.aws.http import logger, metrics, resolver
from parking_core.aws.runtime import runtime
from parking_core.prediction import ingest_and_forecast

app = resolver()


@app.post("/v1/readings")
def post_readings():
    rt = runtime()
    device = service.authenticate(rt.store, app.current_event.get_header_value("x-api-key"))
    payload = service.parse_json_body(app.current_event.decoded_body or "")
    skew = timedelta(seconds=rt.settings.max_clock_skew_s)
    result, body = ingest_and_forecast(rt.store, rt.predictor, payload, device, skew)
    unavailable = sum(f["status"] != "ok" for f in body.get("forecasts", []))
    metrics.add_metric(name="ReadingsAccepted", unit="Count", value=result.created)
    metrics.add_metric(name="ForecastsUnavailable", unit="Count", value=unavailable)
    logger.info("readings stored", extra={"device": device.device_id, "accepted": result.created,
                                          "duplicates": result.duplicates, "forecasts_unavailable": unavailable})
    return body, 201 if result.created else 200


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
