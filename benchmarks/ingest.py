"""Ingestion throughput and latency against the real server on loopback.

    .venv/bin/python benchmarks/ingest.py [--workers 1] [--single 6000] [--batches 600] [--concurrency 16]
                                          [--forecast none|quick|MODEL_DIR]

Starts `parkcast serve` on a free port over a fresh SQLite file, then drives it with a
small asyncio HTTP/1.1 keep-alive client (cheap enough to leave the server most of the CPU)
and prints readings/s and per-request p50/p99 for single and batched POSTs, the machine it ran
on, and whether a forecast endpoint was wired in (then every POST also waits for a forecast).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parkcast.processes import Supervisor, free_port, wait_http  # noqa: E402
from parking_core.contracts import Lot  # noqa: E402
from parking_core.devices import register_device  # noqa: E402
from parking_core.store.sqlite import SQLiteStore  # noqa: E402

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def request_bytes(port: int, key: str, body: dict | list) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/readings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {key}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def connection(port: int, requests: list[bytes], latencies: list[float], statuses: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for req in requests:
        t = time.perf_counter()
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - t)
        statuses.append(int(head.split(b" ", 2)[1]))
    writer.close()


async def drive(port: int, requests: list[bytes], concurrency: int) -> tuple[float, list[float], list[int]]:
    latencies: list[float] = []
    statuses: list[int] = []
    shards = [requests[i::concurrency] for i in range(concurrency)]
    t = time.perf_counter()
    await asyncio.gather(*(connection(port, s, latencies, statuses) for s in shards))
    return time.perf_counter() - t, latencies, statuses


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def machine() -> str:
    """What the figures were measured on: they mean little without it (the machine is shared)."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem = next((int(line.split()[1]) / 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0.0)
    usable = len(os.sched_getaffinity(0))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {cpu}, {usable} usable of {os.cpu_count()} cores, "
            f"{mem:.0f} GiB, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, load {load}")


def start_endpoint(sup: Supervisor, model: str, tmp: str) -> str:
    """The forecast endpoint (serving app) on loopback; `quick` trains a one-epoch TFT package first."""
    if model == "quick":
        from benchmarks.serving import quick_package

        model = str(quick_package(Path(tmp) / "package", "tft"))
    port = free_port()
    proc = sup.start("endpoint", [sys.executable, "-m", "parkcast.cli", "serve-model", "--model", model,
                                  "--host", "127.0.0.1", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/ping", timeout=120, proc=proc)
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--single", type=int, default=6000, help="single-reading POSTs")
    ap.add_argument("--batches", type=int, default=600, help="POSTs of --batch-size readings")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--forecast", default="none", metavar="none|quick|MODEL_DIR",
                    help="wire a forecast endpoint in (every POST then asks it for a forecast): none (default), "
                         "quick (train a one-epoch TFT package first) or a model package folder")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "parkcast.sqlite3")
        store.put_lot(Lot(lot_id="BENCH", name="bench", capacity=500))
        device, key = register_device(store, "BENCH", "bench-cam")
        store.close()

        sup = Supervisor()
        # One device sends everything: the per-device rate limit is off for this benchmark.
        env = {**os.environ, "PARKCAST_DATA_DIR": tmp, "PARKCAST_RATE_LIMIT_PER_DEVICE": "0"}
        try:
            if args.forecast != "none":
                env.update(PARKCAST_PREDICTOR="http", PARKCAST_PREDICTOR_URL=start_endpoint(sup, args.forecast, tmp))
            port = free_port()
            proc = sup.start(
                "api",
                [sys.executable, "-m", "parkcast.cli", "serve", "--port", str(port),
                 "--workers", str(args.workers)],
                env,
            )
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)

            def reading(i: int) -> dict:
                t = T0 + timedelta(seconds=i)
                return {"lot_id": "BENCH", "device_id": device.device_id, "observed_at": t.isoformat(),
                        "capacity": 500, "occupied": i % 500}

            rows = []
            warm = [request_bytes(port, key, reading(10**8 + i)) for i in range(200)]
            asyncio.run(drive(port, warm, args.concurrency))

            single = [request_bytes(port, key, reading(i)) for i in range(args.single)]
            elapsed, lat, st = asyncio.run(drive(port, single, args.concurrency))
            assert set(st) == {201}, set(st)
            rows.append(("single", 1, args.single, args.single / elapsed, pct(lat, 50), pct(lat, 99)))

            base = 10**7
            batches = [
                request_bytes(port, key, {"readings": [reading(base + b * args.batch_size + k)
                                                       for k in range(args.batch_size)]})
                for b in range(args.batches)
            ]
            elapsed, lat, st = asyncio.run(drive(port, batches, args.concurrency))
            assert set(st) == {201}, set(st)
            n = args.batches * args.batch_size
            rows.append(("batch", args.batch_size, n, n / elapsed, pct(lat, 50), pct(lat, 99)))
        finally:
            sup.stop()

    wired = "forecast endpoint WIRED IN (every POST asks it)" if args.forecast != "none" else "no forecast endpoint"
    print(f"\nparkcast ingest benchmark: {args.workers} worker(s), {args.concurrency} connections, "
          f"SQLite WAL synchronous=NORMAL, one writer thread with group commit; {wired}")
    print(f"machine: {machine()}")
    print(f"{'mode':<8} {'per POST':>8} {'readings':>9} {'readings/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, size, n, rate, p50, p99 in rows:
        print(f"{mode:<8} {size:>8} {n:>9} {rate:>11,.0f} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
