"""What the local API publishes at /openapi.json beyond what FastAPI infers: the error shape,
every status each route answers (with Retry-After and Allow where sent), the reading contract
and the response bodies. The contract fuzzing test holds the server to this document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from parking_core.contracts import Forecast, Lot, PutOutcome


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[FieldProblem]


class ErrorBody(BaseModel):
    """The one error shape of every adapter (FastAPI routes and Lambda handlers)."""

    error: ErrorDetail


class IngestAnswer(BaseModel):
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    results: list[PutOutcome]
    forecasts: list[dict[str, Any]] | None = Field(default=None, description="only when an endpoint is wired in")


class Latest(BaseModel):
    observed_at: str
    device_id: str
    occupied: int
    capacity: int
    occupancy_rate: float


class NextStep(BaseModel):
    target_time: str
    p50: float
    prob_free: float


class ForecastSummary(BaseModel):
    """The overview's forecast cell (service.forecast_summary)."""

    model_version: str
    source: str
    issued_at: str
    next: NextStep


class LotSummary(Lot):
    latest: Latest | None
    trend: list[list[float]] | None = None
    forecast: ForecastSummary | None = None


class ReadingsPage(BaseModel):
    lot_id: str
    count: int = Field(ge=0)
    readings: list[dict[str, Any]]


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, unknown or revoked X-API-Key",
    403: "The device may only write its own lot's readings",
    404: "No such lot (or no forecast yet)",
    405: "Method not allowed on this path (see Allow)",
    409: "A reading reuses an idempotency key with other values; nothing was stored",
    413: "Request body too large",
    422: "Invalid input; `fields` names each bad field; nothing was stored",
    429: "Too many requests from this device; retry after Retry-After seconds",
    503: "The store cannot serve now (disk full, read-only, busy); nothing was stored; retry after Retry-After",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        if code in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[code] = entry
    return out


# Every route can answer these: a body over the limit, a wrong method, the store down.
COMMON = (405, 413, 503)


API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = "APIKeyHeader"


def add_to_openapi(app: Any) -> None:
    """Publish the reading contract and its key header (the route parses both itself), and 405 +
    Allow everywhere."""
    from parking_core.contracts import Reading, ReadingBatch

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {})["securitySchemes"] = {API_KEY_SCHEME: {
            "type": "apiKey", "in": "header", "name": API_KEY_HEADER,
            "description": "the device's key (parkcast device add)"}}
        components = schema["components"].setdefault("schemas", {})
        for model in (Reading, ReadingBatch, Forecast):
            defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(defs.pop("$defs", {}))
            components[model.__name__] = defs
        for path in schema["paths"].values():
            for operation in path.values():
                if "405" in operation.get("responses", {}):
                    operation["responses"]["405"]["headers"] = {
                        "Allow": {"description": "the methods this path allows", "schema": {"type": "string"}}
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


READINGS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/Reading"},
                        {"$ref": "#/components/schemas/ReadingBatch"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/Reading"},
                         "minItems": 1, "maxItems": 100},
                    ]
                }
            }
        },
    }
}
