"""The local HTTP API (FastAPI). Routes are thin: parse the request, call parking_core.service."""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from parking_core import service
from parking_core.config import Settings, get_settings
from parking_core.prediction import ingest_and_forecast
from parking_core.predictor import Predictor, open_predictor
from parking_core.store import Store, StoreUnavailable, open_store
from parking_core.store.cache import CachedLookups

log = logging.getLogger("parkcast.api")

def create_app(settings: Settings | None = None, store: Store | None = None,
               predictor: Predictor | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = store or open_store(settings)
    if settings.lookup_cache_s > 0:
        store = CachedLookups(store, settings.lookup_cache_s)
    skew = timedelta(seconds=settings.max_clock_skew_s)
    predictor = predictor if predictor is not None else open_predictor(settings)

    app = FastAPI(
        title="parkcast API",
        version="1",
        description="Ingestion and read API of parkcast. Devices authenticate with X-API-Key.",
    )
    app.state.store = store
    app.state.settings = settings

    @app.exception_handler(service.ServiceError)
    async def _service_error(_: Request, exc: service.ServiceError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        error = service.unavailable(exc)
        return JSONResponse(error.to_dict(), status_code=error.status, headers=error.headers)

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
        body = await request.body()

        def ingest():
            device = service.authenticate(store, x_api_key)
            return ingest_and_forecast(store, predictor, service.parse_json_body(body), device, skew)

        # Sync work (SQLite, the endpoint call) off the event loop, in one hop.
        result, answer = await run_in_threadpool(ingest)
        return JSONResponse(answer, status_code=201 if result.created else 200)

    @app.get("/v1/lots", summary="Every lot with its latest reading (and, on request, its recent trend)")
    async def get_lots(trend_hours: int = Query(default=0, description="hours of history per lot, 0..168")):
        return await run_in_threadpool(service.list_lots, store, trend_hours)

    @app.get("/v1/status", summary="Last pipeline run, last drift decision, model versions")
    async def get_status() -> dict[str, Any]:
        from parking_core.status import system_status

        registry, objects = status_sources()
        return await run_in_threadpool(system_status, registry, objects, settings.model_group, settings.dagster_url)

    @functools.cache
    def status_sources():
        """Opened on the first status request (the dashboard polls it), then reused."""
        from parking_core.objectstore import ObjectStore
        from parking_core.registry import open_registry

        return open_registry(settings), ObjectStore(settings.objects_url)

    @app.get("/v1/lots/{lot_id}", summary="One lot with its latest reading")
    async def get_lot(lot_id: str) -> dict[str, Any]:
        return service.lot_summary(store, service.get_lot(store, lot_id))

    @app.get("/v1/lots/{lot_id}/forecast", summary="The latest forecast of one lot")
    async def get_forecast(lot_id: str) -> dict[str, Any]:
        return service.latest_forecast(store, lot_id)

    @app.get("/v1/lots/{lot_id}/readings", summary="Readings of one lot in [start, end)")
    async def get_readings(
        lot_id: str,
        start: str | None = Query(default=None, description="ISO 8601 with offset; default end - 24 h"),
        end: str | None = Query(default=None, description="ISO 8601 with offset; default now"),
        limit: int | None = Query(default=None, description=f"at most {service.MAX_QUERY_ROWS}"),
    ) -> dict[str, Any]:
        return service.readings_page(store, lot_id, start, end, limit)

    _add_schemas(app)
    web = web_dir(settings)
    if web is not None:
        # Last: API routes win; everything else is the dashboard's static files.
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    return app


def web_dir(settings: Settings) -> Path | None:
    path = Path(settings.web_dir) if settings.web_dir else Path(__file__).resolve().parents[2] / "web"
    return path if (path / "index.html").exists() else None


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
