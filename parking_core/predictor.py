"""Predictor port: who answers a forecast request. The local adapter POSTs to the serving app
on loopback; the AWS adapter calls the SageMaker runtime. Both speak the /invocations contract
(parking_core.forecasting.invocation) and raise PredictorUnavailable on any failure."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Protocol

from parking_core.contracts import Forecast
from parking_core.forecasting.invocation import parse_response


class PredictorUnavailable(RuntimeError):
    """The endpoint could not answer; callers keep the reading and report the forecast missing."""


class Predictor(Protocol):
    def predict(self, payload: dict[str, Any]) -> list[Forecast]: ...


class HttpPredictor:
    def __init__(self, url: str, timeout: float = 5.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"predictor URL must be http(s): {url!r}")
        self.url = url.rstrip("/") + "/invocations"
        self.timeout = timeout

    def predict(self, payload: dict[str, Any]) -> list[Forecast]:
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            # bandit B310: the scheme is checked to be http(s) in __init__.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # nosec B310
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise PredictorUnavailable(f"endpoint answered {exc.code}: {exc.read()[:200]!r}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise PredictorUnavailable(f"endpoint unreachable: {exc}") from None
        return _parse(body)


class SageMakerPredictor:
    def __init__(self, endpoint_name: str, client: Any = None, region: str = "eu-west-2"):
        if client is None:
            import boto3

            client = boto3.client("sagemaker-runtime", region_name=region)
        self.endpoint_name = endpoint_name
        self.client = client

    def predict(self, payload: dict[str, Any]) -> list[Forecast]:
        try:
            response = self.client.invoke_endpoint(EndpointName=self.endpoint_name, ContentType="application/json",
                                                   Accept="application/json", Body=json.dumps(payload).encode())
            body = response["Body"].read()
        except Exception as exc:  # noqa: BLE001 - botocore errors of every kind mean "no forecast now"
            raise PredictorUnavailable(f"endpoint {self.endpoint_name}: {exc}") from None
        return _parse(body)


def _parse(body: bytes) -> list[Forecast]:
    try:
        return parse_response(body)
    except (ValueError, KeyError, TypeError) as exc:
        raise PredictorUnavailable(f"endpoint answered something that is not a forecast: {exc}"[:300]) from None


def open_predictor(settings) -> Predictor | None:
    """None when no endpoint is configured: readings are stored, forecasts are not requested."""
    if settings.predictor == "http":
        return HttpPredictor(settings.predictor_url, timeout=settings.predictor_timeout_s)
    if settings.predictor == "sagemaker":
        return SageMakerPredictor(settings.endpoint_name, region=settings.aws_region)
    return None
