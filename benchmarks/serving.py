"""Forecast endpoint and real-time flow, over real servers on loopback.

    .venv/bin/python benchmarks/serving.py [--model DIR | --architecture gbm|tft] [--requests 300]

Without --model it trains a package on the sample: by default the shipped model (gbm: the
correction trees with their rolling-origin folds, default TrainConfig, about 35 s); with
`--architecture tft` the optional network at its production size for one short epoch (latency
depends on the graph, not the weights).
Prints /invocations p50/p99 for 1 lot and for 29 lots (the whole sample; the body carries each
lot's raw readings, so the time includes the grid build), the endpoint's start (process start
to a 200 on /ping, and the model load alone) and RSS, and the end-to-end POST /v1/readings ->
forecast latency through the local API.

The start is timed twice: "warm" right after training (the package, Python and its libraries in
the OS file cache) and "cold" after the page cache was dropped (`sync; echo 3 >
/proc/sys/vm/drop_caches`, root only: a reboot or a fresh container is as cold). Where the OS
refuses, the cold row says so and only the warm figure is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parkcast.processes import Supervisor, free_port, wait_http  # noqa: E402
from parking_core.csv_import import BIRMINGHAM, import_csv, read_frame  # noqa: E402
from parking_core.devices import register_device  # noqa: E402
from parking_core.forecasting.invocation import build_instance  # noqa: E402
from parking_core.store.sqlite import SQLiteStore  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"


def quick_package(out: Path, architecture: str = "gbm") -> Path:
    from parking_core.forecasting.training import TrainConfig
    from parking_core.forecasting.workflows import train_package

    frame, _ = read_frame(SAMPLE, BIRMINGHAM, "Europe/London")
    config = TrainConfig() if architecture == "gbm" else TrainConfig(
        architectures=(architecture,), max_epochs=1, limit_train_batches=10, refit=False)
    package, _ = train_package(frame, "Europe/London", 30, out, config, progress=False)
    return package.path


def drop_file_cache() -> bool:
    """Empty the OS page cache (needs root and a writable /proc/sys); False where refused."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def timed_start(model: Path, sup: Supervisor) -> tuple[object, str, float, float]:
    """Spawn the endpoint; (process, url, seconds to the first /ping 200, model load seconds)."""
    port = free_port()
    started = time.perf_counter()
    proc = sup.start(f"endpoint-{port}", [sys.executable, "-m", "parkcast.cli", "serve-model", "--model", str(model),
                                          "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/ping", timeout=120, proc=proc)
    seconds = time.perf_counter() - started
    return proc, url, seconds, httpx.get(f"{url}/ping").json()["load_seconds"]


def percentiles(ms: list[float]) -> tuple[float, float]:
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def timed_posts(client: httpx.Client, url: str, bodies: list, headers: dict | None = None) -> list[float]:
    out = []
    for body in bodies:
        start = time.perf_counter()
        r = client.post(url, content=body, headers={"Content-Type": "application/json", **(headers or {})})
        out.append((time.perf_counter() - start) * 1000)
        if r.status_code >= 300:
            raise SystemExit(f"{url}: {r.status_code} {r.text[:200]}")
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--architecture", choices=["gbm", "tft"], default="gbm",
                    help="without --model: the package to train (gbm: the shipped model)")
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parkcast-serving-"))
    model = args.model or quick_package(tmp / "package", args.architecture)
    store = SQLiteStore(tmp / "data" / "parkcast.sqlite3") if (tmp / "data").mkdir() is None else None
    import_csv(store, SAMPLE, BIRMINGHAM, "Europe/London")
    lots = store.list_lots()
    at = max(store.latest_reading(lot.lot_id).observed_at for lot in lots)
    instances = [build_instance(lot, store.query_readings(lot.lot_id, at - timedelta(days=36), at), at) for lot in lots]
    one = [json.dumps({"instances": [instances[i % len(instances)]]}).encode() for i in range(args.requests)]
    many = [json.dumps({"instances": instances}).encode()] * max(20, args.requests // 5)

    sup = Supervisor()
    try:
        proc, url, warm_start, warm_load = timed_start(model, sup)  # right after training: files cached
        proc.terminate()
        proc.wait(timeout=20)
        cold = drop_file_cache()
        proc, url, cold_start, cold_load = timed_start(model, sup)
        with httpx.Client(timeout=30) as client:
            timed_posts(client, f"{url}/invocations", one[:20])  # warm-up
            one_ms = timed_posts(client, f"{url}/invocations", one)
            many_ms = timed_posts(client, f"{url}/invocations", many)
        rss = rss_mb(proc.pid)

        api_port = free_port()
        env = {**os.environ, "PARKCAST_DATA_DIR": str(tmp / "data"), "PARKCAST_PREDICTOR": "http",
               "PARKCAST_PREDICTOR_URL": url}
        api = sup.start("api", [sys.executable, "-m", "parkcast.cli", "serve", "--port", str(api_port)], env=env)
        wait_http(f"http://127.0.0.1:{api_port}/healthz", timeout=60, proc=api)
        keys = {lot.lot_id: register_device(store, lot.lot_id, f"bench-{i}")[1] for i, lot in enumerate(lots[:10])}
        posts = []
        for i in range(args.requests // 3):
            lot = lots[i % 10]
            latest = store.latest_reading(lot.lot_id)
            when = at + timedelta(minutes=30 * (i // 10 + 1))
            body = {"lot_id": lot.lot_id, "device_id": f"bench-{i % 10}", "capacity": latest.capacity,
                    "occupied": latest.occupied, "observed_at": when.isoformat()}
            posts.append((json.dumps(body).encode(), {"X-API-Key": keys[lot.lot_id]}))
        with httpx.Client(timeout=30) as client:
            e2e_ms = []
            for body, headers in posts:
                e2e_ms += timed_posts(client, f"http://127.0.0.1:{api_port}/v1/readings", [body], headers)
                assert client.get(f"http://127.0.0.1:{api_port}/v1/lots/{lots[0].lot_id}/forecast").status_code == 200
    finally:
        sup.stop()

    manifest = json.loads((model / "manifest.json").read_text())
    print(f"\nparkcast serving benchmark (model {manifest.get('model_version', model.name)}, "
          f"architecture {manifest.get('architecture')}, {os.cpu_count()} CPUs, 1 onnxruntime thread)")
    print(f"{'measure':<44} {'p50 ms':>8} {'p99 ms':>8} {'n':>5}")
    for name, ms in (("/invocations, 1 lot", one_ms), (f"/invocations, {len(instances)} lots", many_ms),
                     ("POST /v1/readings -> forecast stored", e2e_ms)):
        p50, p99 = percentiles(ms)
        print(f"{name:<44} {p50:>8.1f} {p99:>8.1f} {len(ms):>5}")
    print(f"start, warm file cache (spawn -> /ping 200): {warm_start:.2f} s; model load alone: {warm_load:.3f} s")
    if cold:
        print(f"start, page cache dropped (spawn -> /ping 200): {cold_start:.2f} s; "
              f"model load alone: {cold_load:.3f} s")
    else:
        print("start with the page cache dropped: not measured (the OS refused drop_caches); the figure above is warm")
    print(f"endpoint RSS after the runs: {rss:.0f} MB")
    print("targets: /invocations 1 lot p50 <= 10 ms, cold start <= 2 s, RSS <= 300 MB")


if __name__ == "__main__":
    main()
