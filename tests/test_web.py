"""The dashboard in real headless Chromium (Debian's chromium, driven by Playwright) against the
real API and forecast endpoint on loopback, with the sample data."""

from __future__ import annotations

import math
import os
import re
import signal
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import SAMPLE_CSV, start_endpoint, start_server

from parkcast.processes import CHROMIUM, CHROMIUM_ARGS

if not Path(CHROMIUM).exists():
    # CI installs chromium (.ci/run) and sets PARKCAST_REQUIRE_BROWSER, so there this fails instead.
    if os.environ.get("PARKCAST_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} missing: apt-get install chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def system(tmp_path_factory, tft_package):
    """Sample data, version 1 registered and promoted, endpoint + API with the dashboard."""
    from parking_core.config import Settings
    from parking_core.csv_import import BIRMINGHAM, import_csv
    from parking_core.devices import register_device
    from parking_core.forecasting.models_dir import deploy_locally
    from parking_core.forecasting.package import upload_package
    from parking_core.mlops import promote_if_better
    from parking_core.objectstore import ObjectStore
    from parking_core.registry import ApprovalStatus
    from parking_core.registry.local import LocalModelRegistry
    from parking_core.store.sqlite import SQLiteStore

    data_dir = tmp_path_factory.mktemp("web") / "data"
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir)
    store = SQLiteStore(settings.sqlite_path)
    import_csv(store, SAMPLE_CSV, BIRMINGHAM, "Europe/London")
    _, key = register_device(store, "Shopping", "cam-shop")
    registry = LocalModelRegistry(settings.registry_path)
    uri = upload_package(ObjectStore(settings.objects_url), tft_package.path, "models/web-test")
    v = registry.register("parkcast-forecaster", uri, {"val_intraday_mae": 0.03},
                          {"model_version": tft_package.version, "run_id": "web-test"})
    # A stand-in evaluation that passes the floor: this fixture only needs a model in production.
    registry.attach_evaluation("parkcast-forecaster", v.version,
                               {"candidate_mae": 0.03, "window_start": "x", "beats_weekly_level": True})
    registry.set_status("parkcast-forecaster", v.version, ApprovalStatus.APPROVED, "test: approve")
    promote_if_better(registry, "parkcast-forecaster", v.version, lambda mv: deploy_locally(settings, mv))
    endpoint = start_endpoint(tft_package.path)
    api = start_server(data_dir, PARKCAST_PREDICTOR="http", PARKCAST_PREDICTOR_URL=endpoint.url,
                       PARKCAST_DAGSTER_URL="http://127.0.0.1:3999")
    yield api, store, key, tft_package
    for server in (api, endpoint):
        if server.proc.poll() is None:
            server.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def post_reading(api, store, key, minutes: int, occupied: int) -> dict:
    last = store.latest_reading("Shopping")
    body = {"lot_id": "Shopping", "device_id": "cam-shop", "capacity": last.capacity, "occupied": occupied,
            "observed_at": (last.observed_at + timedelta(minutes=minutes)).isoformat()}
    r = httpx.post(f"{api.url}/v1/readings", json=body, headers={"X-API-Key": key}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def test_overview_shows_the_apis_numbers_and_updates_live(system, browser, tmp_path):
    api, store, key, _ = system
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{api.url}/?poll=500")
    page.wait_for_selector("tr[data-lot]")
    lots = httpx.get(f"{api.url}/v1/lots").json()
    assert page.locator("tr[data-lot]").count() == len(lots) == 29
    for lot in lots:
        row = page.locator(f'tr[data-lot="{lot["lot_id"]}"]')
        assert row.locator(".occupied").inner_text() == str(lot["latest"]["occupied"])
        assert row.locator(".capacity").inner_text() == str(lot["capacity"])
        assert row.locator(".pct").inner_text() == f"{round(lot['latest']['occupancy_rate'] * 100)}%"
    assert page.locator("svg.spark").count() == 29  # the 24-hour trend of every lot
    assert page.locator(".badge.stale").count() == 29  # the sample ends in 2016: every lot is stale

    # A reading POSTed now appears without a reload.
    page.evaluate("window.__noReload = true")
    answer = post_reading(api, store, key, 30, 1234)
    assert answer["forecasts"][0]["status"] == "ok"
    shopping = page.locator('tr[data-lot="Shopping"] .occupied')
    # Locator waits, not wait_for_function: the page's CSP (script-src 'self') forbids the eval it uses.
    from playwright.sync_api import expect

    expect(shopping).to_have_text("1234", timeout=10_000)
    assert shopping.inner_text() == "1234" and page.evaluate("window.__noReload") is True
    shot = tmp_path / "overview.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_lot_page_draws_the_forecast_with_its_band(system, browser):
    api, store, key, package = system
    post_reading(api, store, key, 60, 1300)
    forecast = httpx.get(f"{api.url}/v1/lots/Shopping/forecast").json()
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(f"{api.url}/?poll=500#/lot/Shopping")
    page.wait_for_selector("#forecast-chart svg polygon.band")
    assert page.locator("#model-version").inner_text() == forecast["model_version"] == package.version
    assert page.locator("#forecast-chart path.p50").count() == 1
    assert page.locator("#forecast-chart path.actual").count() == 1
    cells = page.locator("#forecast-steps .prob-free").all_inner_texts()
    assert cells == [f"{round(s['prob_free'] * 100)}%" for s in forecast["steps"]]
    # The band: P90 along the top and P10 back along the bottom, one point each per step (SVG y
    # grows downwards, so the top edge is never below the bottom one), and the table says the same.
    steps = forecast["steps"]
    points = page.locator("#forecast-chart polygon.band").get_attribute("points").split()
    ys = [float(xy.split(",")[1]) for xy in points]
    top, bottom = ys[:len(steps)], ys[len(steps):][::-1]
    assert len(ys) == 2 * len(steps) and all(t <= b for t, b in zip(top, bottom, strict=True)) and top != bottom
    js_pct = lambda rate: f"{math.floor(rate * 100 + 0.5)}%"  # noqa: E731 - Math.round, as the page
    band = page.locator("#forecast-steps td:nth-child(3)").all_inner_texts()
    assert band == [f"{js_pct(s['p10'])}–{js_pct(s['p90'])}" for s in steps]
    assert page.locator("#lot-occupied").inner_text().startswith("1300 /")

    # A new reading -> a new forecast -> the page follows without a reload.
    post_reading(api, store, key, 90, 1350)
    from playwright.sync_api import expect

    expect(page.locator("#lot-occupied")).to_have_text(re.compile(r"^1350"), timeout=10_000)
    page.close()


def test_status_page_shows_models_and_links_to_dagster(system, browser):
    api, *_ = system
    page = browser.new_page()
    page.goto(f"{api.url}/#/status")
    page.wait_for_selector("#production-version")
    assert page.locator("#production-version").inner_text() == "1"
    assert page.locator('tr[data-version="1"] .model-status').inner_text() == "Approved"
    assert page.locator('a[href="http://127.0.0.1:3999"]').count() == 1
    assert "not run yet" in page.locator("#last-run").inner_text()
    page.close()


def test_the_api_still_owns_its_routes_and_bad_paths(system):
    api, *_ = system
    assert httpx.get(f"{api.url}/v1/lots/NOPE").status_code == 404
    assert httpx.get(f"{api.url}/v1/lots?trend_hours=999").status_code == 422
    assert httpx.get(f"{api.url}/index.html").headers["content-type"].startswith("text/html")
    assert httpx.get(f"{api.url}/nothing-here.js").status_code == 404
