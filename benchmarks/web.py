"""Dashboard first render and page weight in headless Chromium, against the real API and forecast
endpoint on loopback with 30 lots (the 29 sample lots and one more); also writes the README's
screenshots.

    .venv/bin/python benchmarks/web.py [--model DIR] [--loads 10] [--screenshots docs]

First render: navigation start -> the overview table rendered with every lot (the app's
`parkcast-rendered` performance mark).
- "warm": 10 loads, each in a fresh browser context (empty HTTP cache, no cookies) of one
  running browser, against an API process that has already answered.
- "cold": --cold-runs times, the OS page cache dropped where allowed (root), a new API process
  and a new browser process with a new profile: the first visit after a restart.
Page weight: bytes of every response the overview needs (static files and API JSON).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from parkcast.processes import CHROMIUM, CHROMIUM_ARGS, Supervisor, free_port, wait_http  # noqa: E402
from parking_core.contracts import Lot, Reading  # noqa: E402
from parking_core.csv_import import BIRMINGHAM, import_csv  # noqa: E402
from parking_core.devices import register_device  # noqa: E402
from parking_core.store.sqlite import SQLiteStore  # noqa: E402
from serving import drop_file_cache, quick_package  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--screenshots", type=Path, default=None, help="folder for dashboard*.png")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="parkcast-web-"))
    model = args.model or quick_package(tmp / "package")
    (tmp / "data").mkdir()
    store = SQLiteStore(tmp / "data" / "parkcast.sqlite3")
    import_csv(store, SAMPLE, BIRMINGHAM, "Europe/London")
    last = store.latest_reading("Shopping")
    store.put_lot(Lot(lot_id="Lot-30", name="Lot 30 (extra)", capacity=250, timezone="Europe/London"))
    store.put_readings([Reading(lot_id="Lot-30", device_id="bench", capacity=250, occupied=100 + i,
                                observed_at=last.observed_at - timedelta(minutes=30 * i)) for i in range(48)])
    _, key = register_device(store, "Shopping", "cam-shop")

    sup = Supervisor()
    try:
        endpoint_port, api_port = free_port(), free_port()
        endpoint_url, url = f"http://127.0.0.1:{endpoint_port}", f"http://127.0.0.1:{api_port}"
        endpoint = sup.start("endpoint", [sys.executable, "-m", "parkcast.cli", "serve-model", "--model",
                                          str(model), "--port", str(endpoint_port)])
        wait_http(f"{endpoint_url}/ping", proc=endpoint)
        env = {**os.environ, "PARKCAST_DATA_DIR": str(tmp / "data"), "PARKCAST_PREDICTOR": "http",
               "PARKCAST_PREDICTOR_URL": endpoint_url}

        def start_api():
            proc = sup.start("api", [sys.executable, "-m", "parkcast.cli", "serve", "--port", str(api_port)], env)
            wait_http(f"{url}/healthz", timeout=120, proc=proc)
            return proc

        api = start_api()
        for minutes, occupied in ((30, 1450), (60, 1500)):  # two live readings -> a forecast for Shopping
            body = {"lot_id": "Shopping", "device_id": "cam-shop", "capacity": last.capacity, "occupied": occupied,
                    "observed_at": (last.observed_at + timedelta(minutes=minutes)).isoformat()}
            httpx.post(f"{url}/v1/readings", json=body, headers={"X-API-Key": key}, timeout=30).raise_for_status()

        renders, weights = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for _ in range(args.loads):
                context = browser.new_context()
                page = context.new_page()
                sizes: dict[str, int] = {}
                page.on("response", lambda r, sizes=sizes: sizes.__setitem__(r.url, len(r.body())))
                page.goto(f"{url}/")
                # Polled with evaluate: wait_for_function's eval is refused by the page's CSP.
                while not page.evaluate("performance.getEntriesByName('parkcast-rendered').length > 0"):
                    time.sleep(0.01)
                rows = page.locator("tr[data-lot]").count()
                assert rows == 30, rows
                renders.append(page.evaluate("performance.getEntriesByName('parkcast-rendered')[0].startTime"))
                weights.append(sizes)
                context.close()
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                for name, fragment, viewport in (("dashboard.png", "", (1280, 1000)),
                                                 ("dashboard-lot.png", "#/lot/Shopping", (1280, 1150)),
                                                 ("dashboard-phone.png", "#/lot/Shopping", (390, 844))):
                    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
                    page.goto(f"{url}/{fragment}")
                    page.wait_for_function("performance.getEntriesByName('parkcast-rendered').length > 0")
                    page.screenshot(path=str(args.screenshots / name))
                    page.close()
            browser.close()

            cold_renders, cold_walls, dropped = [], [], []
            for _ in range(args.cold_runs):  # a restart: new API process, new browser process and profile
                api.terminate()
                api.wait(timeout=20)
                dropped.append(drop_file_cache())
                started = time.perf_counter()
                api = start_api()
                with tempfile.TemporaryDirectory(prefix="parkcast-profile-") as profile:
                    context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM,
                                                                   args=CHROMIUM_ARGS)
                    page = context.new_page()
                    page.goto(f"{url}/")
                    page.wait_for_function("performance.getEntriesByName('parkcast-rendered').length > 0")
                    cold_walls.append((time.perf_counter() - started) * 1000)
                    assert page.locator("tr[data-lot]").count() == 30
                    cold_renders.append(page.evaluate(
                        "performance.getEntriesByName('parkcast-rendered')[0].startTime"))
                    context.close()
    finally:
        sup.stop()

    sizes = weights[-1]
    static = sum(v for k, v in sizes.items() if "/v1/" not in k)
    data = sum(v for k, v in sizes.items() if "/v1/" in k)
    print(f"\nparkcast dashboard benchmark: 30 lots, loopback, headless Chromium, {os.cpu_count()} CPUs")
    print(f"{'measure':<40} {'value':>12}")
    print(f"{'warm: first render p50 (ms)':<40} {statistics.median(renders):>12.0f}")
    print(f"{'warm: first render max (ms)':<40} {max(renders):>12.0f}")
    if cold_renders:
        cache = "page cache dropped" if all(dropped) else "page cache NOT dropped (refused)"
        print(f"cold ({len(cold_renders)} runs: new API process, new browser and profile, {cache}):")
        spread = f"{statistics.median(cold_renders):.0f} / {max(cold_renders):.0f}"
        print(f"{'  first render p50 / max (ms)':<40} {spread:>12}")
        print(f"{'  API spawn -> rendered p50 (ms)':<40} {statistics.median(cold_walls):>12.0f}")
    print(f"{'page weight, static files (KB)':<40} {static / 1024:>12.1f}")
    print(f"{'page weight, API data (KB)':<40} {data / 1024:>12.1f}")
    print(f"{'page weight, total (KB)':<40} {(static + data) / 1024:>12.1f}")
    print("targets: first render < 1 s, total page weight < 300 KB")


if __name__ == "__main__":
    main()
