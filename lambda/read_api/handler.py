"""The web page's read API on API Gateway: GET /v1/lots, /v1/lots/{id}, /v1/lots/{id}/forecast,
/v1/lots/{id}/readings, /v1/status. Same core functions as the local routes."""

from parking_core import service
from parking_core.aws.http import logger, metrics, path_param, resolver
from parking_core.aws.runtime import runtime

app = resolver()


def int_param(name: str) -> int | None:
    value = (app.current_event.query_string_parameters or {}).get(name)
    if value is not None and not (value.isascii() and value.isdigit()):  # "²".isdigit() is True
        raise service.InvalidInput(f"{name} must be an integer", [service.FieldError(name, "not an integer")])
    return int(value) if value else None


@app.get("/v1/lots")
def lots():
    return service.list_lots(runtime().store, int_param("trend_hours") or 0)


@app.get("/v1/status")
def status():
    from parking_core.status import system_status

    rt = runtime()
    return system_status(rt.registry, rt.objects, rt.settings.model_group, rt.settings.dagster_url)


@app.get("/v1/lots/<lot_id>")
def lot(lot_id: str):
    store = runtime().store
    return service.lot_summary(store, service.get_lot(store, path_param(lot_id)))


@app.get("/v1/lots/<lot_id>/forecast")
def forecast(lot_id: str):
    return service.latest_forecast(runtime().store, path_param(lot_id))


@app.get("/v1/lots/<lot_id>/readings")
def readings(lot_id: str):
    q = app.current_event.query_string_parameters or {}
    return service.readings_page(runtime().store, path_param(lot_id), q.get("start"), q.get("end"),
                                 int_param("limit"))


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
