"""API Gateway HTTP API (payload v2) plumbing with aws-lambda-powertools: one resolver per
function, ServiceError -> its 4xx JSON body, anything unexpected -> 500 JSON (and a logged
traceback), never a bare Lambda error."""

from __future__ import annotations

import json
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types

from parking_core.service import ServiceError, unavailable
from parking_core.store import StoreUnavailable

logger = Logger(service="parkcast")
metrics = Metrics(namespace="parkcast", service="parkcast")


def json_response(status: int, body, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body),
                    headers=headers or None)


def resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver()

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        logger.info("request refused", extra={"status": exc.status, "error": exc.message})
        return json_response(exc.status, exc.to_dict(), exc.headers)

    @app.exception_handler(StoreUnavailable)
    def _store_unavailable(exc: StoreUnavailable) -> Response:
        logger.warning("store unavailable", extra={"error": str(exc)})
        return _service_error(unavailable(exc))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        metrics.add_metric(name="UnhandledErrors", unit="Count", value=1)
        body = {"error": {"code": "internal", "message": "internal error; see the logs", "fields": []}}
        return json_response(500, body)

    @app.not_found
    def _not_found(_) -> Response:
        return json_response(404, {"error": {"code": "not_found", "message": "no such route", "fields": []}})

    return app


def path_param(value: str) -> str:
    """rawPath is percent-encoded ("Broad%20Street"); the route parameter arrives as sent."""
    return unquote(value)
