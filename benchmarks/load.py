"""Faults under load: N simulated devices post readings for a while against the real API
(`parkcast serve` in a subprocess over a fresh SQLite file) while one fault is injected in the
middle third of the run, then lifted.

    .venv/bin/python benchmarks/load.py [--devices 8] [--seconds 6] [--batch 1]
                                        [--faults kill,disk_full,read_only,endpoint_down,endpoint_slow]

Faults:
  kill           SIGKILL the API, start it again at once (downtime = its start-up)
  disk_full      the SQLite file reaches its page cap (PARKCAST_SQLITE_MAX_PAGES): a ballast
                 table fills it, then is dropped ("the operator freed space"); no restart
  read_only      the store's file system turns read-only (as ext4 does after an I/O error): the
                 SQLite file, its WAL and the data folder become immutable (`chattr +i`, which
                 binds root too), then writable again; no restart. Needs Linux, ext4/xfs/btrfs
                 and CAP_LINUX_IMMUTABLE (root), else the scenario refuses to run.
  endpoint_down  the forecast endpoint stops listening, then comes back
  endpoint_slow  the forecast endpoint answers after 2 s, beyond PARKCAST_PREDICTOR_TIMEOUT_S

Each device behaves like the edge uploader: it retries a reading with the same idempotency key
until the API acknowledges it (200/201), waiting Retry-After on 429/503 and backing off on
connection errors. Afterwards every acknowledged reading must be in the store exactly once
(counted by key from the SQLite file), `PRAGMA integrity_check` must be ok, no answer may be a
500 or lack the error shape, and the API must acknowledge again after the fault without help.
Prints per phase: requests, acknowledged readings/s, p50/p99 latency and answers by status.
The forecast endpoint here is a small loopback server answering the /invocations contract
(what is measured is the API's behaviour when it is slow or gone, not the model).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parkcast.processes import free_port, wait_http  # noqa: E402
from parking_core.contracts import Lot  # noqa: E402
from parking_core.devices import register_device  # noqa: E402
from parking_core.store.sqlite import SQLiteStore  # noqa: E402

FAULTS = ("kill", "disk_full", "read_only", "endpoint_down", "endpoint_slow")
PHASES = ("before", "fault", "after")
T0 = datetime(2020, 1, 1, tzinfo=UTC)
# Head room above the file's size at the start for the disk_full scenario (4 KiB pages).
PAGE_HEADROOM = 2000


class Endpoint:
    """A forecast endpoint on loopback speaking /invocations; `delay_s` makes it slow,
    stop()/start() take it off the network and back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.delay_s = 0.0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(endpoint.delay_s)
                body = json.dumps({"forecasts": [_forecast(i) for i in payload["instances"]]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # the API gave up waiting (endpoint_slow): a broken pipe here is the point

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _forecast(instance: dict) -> dict:
    at = datetime.fromisoformat(instance["at"])
    return {"lot_id": instance["lot"]["lot_id"], "issued_at": at.isoformat(), "model_version": "load-test",
            "steps": [{"target_time": (at + timedelta(minutes=30)).isoformat(), "p10": 0.2, "p50": 0.5,
                       "p90": 0.8, "prob_free": 0.9}]}


@dataclass
class Api:
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parkcast.cli", "serve", "--port", str(self.port)],
            env={**os.environ, "PARKCAST_DATA_DIR": str(self.data_dir), **self.env},
        )
        wait_http(f"{self.url}/healthz", timeout=60, proc=self.proc)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)  # by its own PID
            self.proc.wait(timeout=30)


@dataclass
class Sample:
    phase: str
    status: int  # 0: no answer (connection refused, reset, timeout)
    latency_ms: float
    bad_shape: bool = False
    forecasts: tuple[str, ...] = ()  # each forecast's status in an acknowledgement ("ok", "unavailable")


class Device(threading.Thread):
    """Posts one reading at a time, retrying it with the same key until acknowledged."""

    def __init__(self, name: str, lot_id: str, key: str, api: Api, clock: Clock, batch: int):
        super().__init__(daemon=True)
        self.device_id, self.lot_id, self.key, self.api, self.clock, self.batch = name, lot_id, key, api, clock, batch
        self.samples: list[Sample] = []
        self.acked: list[str] = []  # observed_at of each acknowledged reading
        self.next = 0

    def body(self, first: int) -> tuple[dict, list[str]]:
        times = [(T0 + timedelta(seconds=first + k)).isoformat() for k in range(self.batch)]
        readings = [{"lot_id": self.lot_id, "device_id": self.device_id, "observed_at": t, "capacity": 200,
                     "occupied": (first + k) % 200} for k, t in enumerate(times)]
        return ({"readings": readings} if self.batch > 1 else readings[0]), times

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self.clock.done():
                body, times = self.body(self.next)
                status, wait = self.post(client, body)
                if status in (200, 201):
                    self.acked.extend(times)
                    self.next += self.batch
                elif status == 0 or status >= 500 or status == 429:
                    time.sleep(wait)
                else:  # a 4xx other than 429 would be a bug in this load generator or the API
                    self.next += self.batch

    def post(self, client: httpx.Client, body: dict) -> tuple[int, float]:
        phase = self.clock.phase()
        start = time.perf_counter()
        try:
            r = client.post(f"{self.api.url}/v1/readings", json=body, headers={"X-API-Key": self.key})
        except httpx.HTTPError:
            self.samples.append(Sample(phase, 0, (time.perf_counter() - start) * 1000))
            return 0, 0.05
        sample = Sample(phase, r.status_code, (time.perf_counter() - start) * 1000)
        try:
            if r.status_code >= 400:
                error = r.json()["error"]
                sample.bad_shape = not ({"code", "message", "fields"} <= set(error))
            else:
                sample.forecasts = tuple(f["status"] for f in r.json().get("forecasts", []))
        except (ValueError, KeyError, TypeError, AttributeError):
            sample.bad_shape = True
        self.samples.append(sample)
        retry_after = r.headers.get("Retry-After", "")
        return r.status_code, min(1.0, float(retry_after)) if retry_after.isdigit() else 0.05


class Clock:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.monotonic(), seconds
        self.fault_on = threading.Event()
        self.fault_over = threading.Event()
        self.marks: dict[str, float] = {}

    def mark(self, event: threading.Event, name: str) -> None:
        self.marks[name] = time.monotonic()
        event.set()

    def durations(self) -> dict[str, float]:
        on, over = self.marks["fault"], self.marks["after"]
        return {"before": on - self.start, "fault": over - on, "after": self.start + self.seconds - over}

    def phase(self) -> str:
        return "after" if self.fault_over.is_set() else "fault" if self.fault_on.is_set() else "before"

    def done(self) -> bool:
        return time.monotonic() - self.start > self.seconds


def fill_ballast(path: Path, max_pages: int) -> None:
    """Another writer (uncapped) grows the file to the API's page cap: the disk is full."""
    with sqlite3.connect(path, timeout=30, isolation_level=None) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ballast (b BLOB)")
        while conn.execute("PRAGMA page_count").fetchone()[0] < max_pages:
            conn.execute("INSERT INTO ballast VALUES (zeroblob(512 * 1024))")


def drop_ballast(path: Path) -> None:
    with sqlite3.connect(path, timeout=30, isolation_level=None) as conn:
        conn.execute("DROP TABLE IF EXISTS ballast")  # its pages go to the freelist: room again


def read_only_files(db: Path) -> list[Path]:
    # Not the -shm file: SQLite maps it into memory, and writes to a mapping of an immutable file
    # kill the process with SIGBUS, which a read-only remount does not do to a running reader.
    return [db, db.with_name(db.name + "-wal"), db.parent]


def set_immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True, capture_output=True)


def read_only_unsupported(workdir: Path | None = None) -> str | None:
    """Why the read_only scenario cannot run here (None when it can): it needs chattr +i."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        probe = Path(tmp) / "probe"
        probe.write_bytes(b"")
        try:
            set_immutable([probe], True)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = exc.stderr.decode().strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
            return f"chattr +i is not available here ({detail or exc}): needs root and ext4/xfs/btrfs"
        try:
            probe.write_bytes(b"x")
            return "chattr +i did not stop a write on this file system"
        except PermissionError:
            return None
        finally:
            set_immutable([probe], False)


@dataclass
class Result:
    fault: str
    rows: list[tuple]
    acked: int
    stored_once: int
    duplicates: int
    lost: int
    integrity: str
    server_errors: int
    bad_shapes: int
    recovered: bool
    forecasts: dict[str, Counter]  # per phase, the forecast statuses the acknowledgements carried


def run_scenario(fault: str, devices: int = 8, seconds: float = 6.0, batch: int = 1,
                 workdir: Path | None = None) -> Result:
    if fault == "read_only" and (why := read_only_unsupported(workdir)):
        raise RuntimeError(f"cannot make the store read-only here: {why}")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data_dir = Path(tmp)
        db = data_dir / "parkcast.sqlite3"
        store = SQLiteStore(db)
        keys = []
        for d in range(devices):
            store.put_lot(Lot(lot_id=f"LOAD-{d:03d}", name=f"load {d}", capacity=200))
            keys.append(register_device(store, f"LOAD-{d:03d}", f"cam-{d:03d}")[1])
        store.close()
        env = {"PARKCAST_RATE_LIMIT_PER_DEVICE": "0", "PARKCAST_PREDICTOR_TIMEOUT_S": "0.5"}
        endpoint = None
        if fault.startswith("endpoint"):
            endpoint = Endpoint()
            endpoint.start()
            env.update(PARKCAST_PREDICTOR="http", PARKCAST_PREDICTOR_URL=f"http://127.0.0.1:{endpoint.port}")
        max_pages = 0
        if fault == "disk_full":
            with sqlite3.connect(db) as conn:
                max_pages = conn.execute("PRAGMA page_count").fetchone()[0] + PAGE_HEADROOM
            env["PARKCAST_SQLITE_MAX_PAGES"] = str(max_pages)
        api = Api(data_dir, env)
        api.start()
        clock = Clock(seconds)
        fleet = [Device(f"cam-{d:03d}", f"LOAD-{d:03d}", keys[d], api, clock, batch) for d in range(devices)]
        for device in fleet:
            device.start()
        try:
            time.sleep(seconds / 3)
            clock.mark(clock.fault_on, "fault")
            if fault == "kill":
                api.kill()
                api.start()
            elif fault == "disk_full":
                fill_ballast(db, max_pages)
                time.sleep(seconds / 3)
                drop_ballast(db)
            elif fault == "read_only":
                set_immutable(read_only_files(db), True)
                try:
                    time.sleep(seconds / 3)
                finally:
                    set_immutable(read_only_files(db), False)
            elif fault == "endpoint_down":
                endpoint.stop()
                time.sleep(seconds / 3)
                endpoint.start()
            elif fault == "endpoint_slow":
                endpoint.delay_s = 2.0
                time.sleep(seconds / 3)
                endpoint.delay_s = 0.0
            clock.mark(clock.fault_over, "after")
            for device in fleet:
                device.join(timeout=seconds + 30)
        finally:
            api.kill(signal.SIGTERM)
            if endpoint is not None:
                endpoint.stop()
        with sqlite3.connect(db) as conn:
            counts = Counter({(dev, t): n for dev, t, n in conn.execute(
                "SELECT device_id, observed_at, COUNT(*) FROM readings GROUP BY lot_id, device_id, observed_at")})
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    samples = [s for d in fleet for s in d.samples]
    acked = {(d.device_id, _utc_key(t)) for d in fleet for t in d.acked}
    after = [s for s in samples if s.phase == "after"]
    return Result(
        fault=fault,
        rows=phase_rows(samples, clock.durations(), batch),
        acked=len(acked),
        stored_once=sum(1 for k in acked if counts.get(k) == 1),
        duplicates=sum(1 for n in counts.values() if n > 1),
        lost=sum(1 for k in acked if k not in counts),
        integrity=integrity,
        server_errors=sum(1 for s in samples if s.status >= 500 and s.status != 503),
        bad_shapes=sum(1 for s in samples if s.bad_shape),
        recovered=any(s.status in (200, 201) for s in after),
        forecasts={phase: Counter(f for s in samples if s.phase == phase for f in s.forecasts) for phase in PHASES},
    )


def _utc_key(iso: str) -> str:
    from parking_core.contracts import utc_iso

    return utc_iso(datetime.fromisoformat(iso))


def phase_rows(samples: list[Sample], durations: dict[str, float], batch: int) -> list[tuple]:
    rows = []
    for phase in PHASES:
        these = [s for s in samples if s.phase == phase]
        if not these:
            continue
        lat = sorted(s.latency_ms for s in these)
        ok = sum(1 for s in these if s.status in (200, 201)) * batch
        statuses = Counter("none" if s.status == 0 else str(s.status) for s in these)
        rows.append((phase, durations[phase], len(these), ok / max(durations[phase], 1e-3), statistics.median(lat),
                     lat[min(len(lat) - 1, int(0.99 * len(lat)))], dict(sorted(statuses.items()))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0, help="whole run per fault; the fault holds the middle third")
    ap.add_argument("--batch", type=int, default=1, help="readings per POST")
    ap.add_argument("--faults", default=",".join(FAULTS))
    args = ap.parse_args()
    from benchmarks.ingest import machine

    results = [run_scenario(f, args.devices, args.seconds, args.batch) for f in args.faults.split(",")]
    print(f"\nparkcast faults under load: {args.devices} devices, {args.seconds:g} s per fault "
          f"(fault in the middle third), {args.batch} reading(s) per POST")
    print(f"machine: {machine()}")
    print(f"{'fault':<14} {'phase':<7} {'s':>5} {'requests':>8} {'acked/s':>8} {'p50 ms':>8} {'p99 ms':>8}  answers")
    for r in results:
        for phase, secs, n, rate, p50, p99, statuses in r.rows:
            print(f"{r.fault:<14} {phase:<7} {secs:>5.1f} {n:>8} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f}  {statuses}")
    print(f"\n{'fault':<14} {'acked':>6} {'stored once':>11} {'lost':>5} {'dup':>4} {'integrity':>9} "
          f"{'5xx not 503':>11} {'bad shape':>9} {'recovered':>9}")
    for r in results:
        print(f"{r.fault:<14} {r.acked:>6} {r.stored_once:>11} {r.lost:>5} {r.duplicates:>4} {r.integrity:>9} "
              f"{r.server_errors:>11} {r.bad_shapes:>9} {r.recovered!s:>9}")


if __name__ == "__main__":
    main()
