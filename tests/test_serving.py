"""The forecast endpoint (SageMaker's container contract) and the real-time flow over real
servers on loopback: POST a reading -> forecast stored -> GET returns it; endpoint down ->
the reading is stored and the forecast is marked unavailable."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import SAMPLE_CSV, start_endpoint, start_server
from fastapi.testclient import TestClient

from parking_core.contracts import Forecast, Lot, Reading
from parking_core.devices import register_device
from parking_core.forecasting.invocation import build_instance
from parking_core.forecasting.serve import forecast_lot
from parking_core.predictor import HttpPredictor, PredictorUnavailable
from parking_core.serving.app import create_serving_app
from parking_core.store.sqlite import SQLiteStore

AT = datetime(2016, 11, 22, 11, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    from parking_core.csv_import import BIRMINGHAM, import_csv

    store = SQLiteStore(tmp_path_factory.mktemp("sample") / "parkcast.sqlite3")
    import_csv(store, SAMPLE_CSV, BIRMINGHAM, "Europe/London")
    return store


def instance(store, lot_id: str, at: datetime = AT) -> dict:
    lot = store.get_lot(lot_id)
    return build_instance(lot, store.query_readings(lot_id, at - timedelta(days=36), at), at)


def test_ping_and_invocations_answer_what_the_core_computes(tft_package, sample_store):
    client = TestClient(create_serving_app(tft_package.path))
    ping = client.get("/ping")
    assert ping.status_code == 200 and ping.json()["model_version"] == tft_package.version

    body = {"instances": [instance(sample_store, "Shopping"), instance(sample_store, "Broad Street")]}
    r = client.post("/invocations", json=body)
    assert r.status_code == 200
    answer = r.json()
    assert answer["model_version"] == tft_package.version
    forecasts = [Forecast.model_validate(f) for f in answer["forecasts"]]
    assert [f.lot_id for f in forecasts] == ["Shopping", "Broad Street"]
    # Same numbers as the core function reading the store directly (batch of 2 vs 1: float noise).
    direct = forecast_lot(sample_store, "Shopping", tft_package, tft_package.forecaster(), at=AT)
    assert forecasts[0].source == "model" and len(direct.steps) == 8
    for served, expected in zip(forecasts[0].steps, direct.steps, strict=True):
        assert served.target_time == expected.target_time
        assert served.p50 == pytest.approx(expected.p50, abs=1e-5)
        assert served.p90 == pytest.approx(expected.p90, abs=1e-5)


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not JSON"),
    (b"{}", "instances: Field required"),
    (b'{"instances": []}', "instances: List should have at least 1 item"),
    (b'{"instances": [{"lot": {"lot_id": "L", "name": "L", "capacity": 10}, "at": "2016-11-22T11:00:00",'
     b' "history": {"observed_at": [], "occupied": [], "capacity": []}}]}', "at needs a UTC offset"),
    (b'{"instances": [{"lot": {"lot_id": "L", "name": "L", "capacity": 10}, "at": "2016-11-22T11:00:00Z",'
     b' "history": {"observed_at": [1], "occupied": [], "capacity": [1]}}]}', "same length"),
])
def test_bad_invocations_are_400_with_the_reason(tft_package, body, message):
    client = TestClient(create_serving_app(tft_package.path))
    r = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and message in r.json()["error"]["message"]


def test_a_lot_without_history_gets_a_flagged_baseline(tft_package):
    client = TestClient(create_serving_app(tft_package.path))
    lot = Lot(lot_id="NEW-LOT", name="new", capacity=50, timezone="Europe/London")
    r = client.post("/invocations", json={"instances": [build_instance(lot, [], AT)]})
    assert r.status_code == 200 and r.json()["forecasts"][0]["source"].startswith("baseline:")


def test_http_predictor_over_loopback_and_when_the_endpoint_is_down(tft_package, sample_store):
    endpoint = start_endpoint(tft_package.path)
    try:
        (forecast,) = HttpPredictor(endpoint.url).predict({"instances": [instance(sample_store, "Shopping")]})
        assert forecast.lot_id == "Shopping" and forecast.model_version == tft_package.version
        with pytest.raises(PredictorUnavailable, match="400"):
            HttpPredictor(endpoint.url).predict({"instances": []})
    finally:
        endpoint.kill(signal.SIGTERM)
    with pytest.raises(PredictorUnavailable, match="unreachable"):
        HttpPredictor(endpoint.url, timeout=2).predict({"instances": [instance(sample_store, "Shopping")]})


def test_post_reading_gets_a_forecast_end_to_end_and_survives_the_endpoint_going_down(tft_package, data_dir):
    from parking_core.csv_import import BIRMINGHAM, import_csv

    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    import_csv(store, SAMPLE_CSV, BIRMINGHAM, "Europe/London")
    _, key = register_device(store, "Shopping", "cam-shop")
    last = store.latest_reading("Shopping")
    endpoint = start_endpoint(tft_package.path)
    api = start_server(data_dir, PARKCAST_PREDICTOR="http", PARKCAST_PREDICTOR_URL=endpoint.url)
    headers = {"X-API-Key": key}

    def reading(minutes: int, occupied: int) -> dict:
        when = last.observed_at + timedelta(minutes=minutes)
        return Reading(lot_id="Shopping", device_id="cam-shop", observed_at=when, capacity=last.capacity,
                       occupied=occupied).model_dump(mode="json", exclude_none=True)

    try:
        r = httpx.post(f"{api.url}/v1/readings", json=reading(30, 400), headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        (entry,) = r.json()["forecasts"]
        assert entry["status"] == "ok" and entry["forecast"]["model_version"] == tft_package.version
        stored = httpx.get(f"{api.url}/v1/lots/Shopping/forecast").json()
        assert stored == entry["forecast"]
        assert stored["issued_at"].startswith((last.observed_at + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"))

        endpoint.kill(signal.SIGTERM)  # the endpoint goes down: readings still land
        r = httpx.post(f"{api.url}/v1/readings", json=reading(60, 410), headers=headers, timeout=30)
        assert r.status_code == 201
        (entry,) = r.json()["forecasts"]
        assert entry["status"] == "unavailable" and "unreachable" in entry["reason"]
        assert store.latest_reading("Shopping").occupied == 410
        assert httpx.get(f"{api.url}/v1/lots/Shopping/forecast").json() == stored  # the last good one stays
        # A duplicate creates nothing and asks for no forecast.
        r = httpx.post(f"{api.url}/v1/readings", json=reading(60, 410), headers=headers, timeout=30)
        assert r.status_code == 200 and r.json()["forecasts"] == []
        assert httpx.get(f"{api.url}/v1/lots/NOPE/forecast").status_code == 404
    finally:
        for server in (api, endpoint):
            if server.proc.poll() is None:
                server.kill(signal.SIGTERM)


def test_the_local_endpoint_follows_a_promotion(tft_package, data_dir, monkeypatch):
    """A promotion rewrites models/CURRENT; the running endpoint serves the new version without
    a restart, and keeps the old one if the new package is broken."""
    import json as _json
    import shutil

    from parking_core import config
    from parking_core.forecasting.models_dir import install_package, models_root
    from parking_core.forecasting.package import ModelPackage
    from parking_core.serving import app as serving

    monkeypatch.setenv("PARKCAST_DATA_DIR", str(data_dir))
    monkeypatch.setattr(serving, "RELOAD_CHECK_S", 0.0)
    config.get_settings.cache_clear()
    try:
        settings = config.get_settings()
        install_package(settings, tft_package)
        client = TestClient(create_serving_app())
        assert client.get("/ping").json()["model_version"] == tft_package.version
        # "Version 2": the same weights under another name, installed as a promotion would.
        copy = data_dir / "v2"
        shutil.copytree(tft_package.path, copy)
        manifest = _json.loads((copy / "manifest.json").read_text())
        manifest["model_version"] = tft_package.version + "-v2"
        (copy / "manifest.json").write_text(_json.dumps(manifest))
        install_package(settings, ModelPackage.load(copy))
        assert client.get("/ping").json()["model_version"] == tft_package.version + "-v2"
        # A broken package in CURRENT: the endpoint keeps answering with the last good one.
        broken = models_root(settings) / "broken"
        broken.mkdir()
        (models_root(settings) / "CURRENT").write_text("broken\n")
        assert client.get("/ping").json()["model_version"] == tft_package.version + "-v2"
    finally:
        config.get_settings.cache_clear()
