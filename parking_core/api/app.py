"""The local HTTP API (FastAPI). Routes are thin: parse the request, call parking_core.service."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from parking_core import service
from parking_core.config import Settings, get_settings
from parking_core.store import Store, open_store

log = logging.getLogger("parkcast.api")

MAX_BODY_BYTES = 1 << 20


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = store or open_store(settings)
    skew = timedelta(seconds=settings.max_clock_skew_s)

    app = FastAPI(
        title="parkcast API",
        version="1",
        description="Ingestion and read API of parkcast. Devices authenticate with X-API-Key.",
    )
    app.state.store = store
    app.state.settings = settings

    @app.exception_handler(service.ServiceError)
    async def _service_error(_: Request, exc: service.ServiceError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            service.FieldError(".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), e["msg"])
            for e in exc.errors()
        ]
        return JSONResponse(service.InvalidInput("invalid request", fields).to_dict(), status_code=422)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/readings",
        status_code=201,
        summary="Store one reading or a batch of up to 100",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/Reading"},
                                {"$ref": "#/components/schemas/ReadingBatch"},
                            ]
                        }
                    }
                },
            }
        },
    )
    async def post_readings(request: Request, x_api_key: str | None = Header(default=None)) -> JSONResponse:
        device = service.authenticate(store, x_api_key)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise service.ServiceError(f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            payload: Any = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise service.InvalidInput(f"body is not JSON: {exc}", [service.FieldError("body", "not JSON")]) from None
        result = service.ingest_readings(store, payload, device, max_clock_skew=skew)
        return JSONResponse(result.to_dict(), status_code=201 if result.created else 200)

    @app.get("/v1/lots", summary="Every lot with its latest reading")
    async def get_lots() -> list[dict[str, Any]]:
        return service.list_lots(store)

    @app.get("/v1/lots/{lot_id}", summary="One lot with its latest reading")
    async def get_lot(lot_id: str) -> dict[str, Any]:
        return service.lot_summary(store, service.get_lot(store, lot_id))

    @app.get("/v1/lots/{lot_id}/readings", summary="Readings of one lot in [start, end)")
    async def get_readings(
        lot_id: str,
        start: str | None = Query(default=None, description="ISO 8601 with offset; default end - 24 h"),
        end: str | None = Query(default=None, description="ISO 8601 with offset; default now"),
        limit: int | None = Query(default=None, description=f"at most {service.MAX_QUERY_ROWS}"),
    ) -> dict[str, Any]:
        readings = service.readings_between(store, lot_id, start, end, limit)
        return {
            "lot_id": lot_id,
            "count": len(readings),
            "readings": [r.model_dump(mode="json", exclude_none=True, exclude={"lot_id"}) for r in readings],
        }

    _add_schemas(app)
    return app


def _add_schemas(app: FastAPI) -> None:
    """Publish the reading contract in OpenAPI although the route parses the body itself."""
    from parking_core.contracts import ReadingBatch

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        defs = ReadingBatch.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.pop("$defs", {}))
        components["ReadingBatch"] = defs
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
