"""`parkcast demo`: the whole local system on the embedded default, with sample data.

Each service runs as a child process with default signal handling (dagster dev, for one,
ignores SIGINT/SIGTERM otherwise); Ctrl-C stops them all by PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from parking_core.config import Settings
from parking_core.csv_import import import_csv
from parking_core.devices import register_device
from parking_core.store import open_store

REPO = Path(__file__).resolve().parent.parent


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Supervisor:
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env, preexec_fn=_reset_signals)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def wait_any(self) -> tuple[str, int]:
        while True:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    return name, proc.returncode
            time.sleep(0.5)


def demo_device_key(settings: Settings, lot_id: str) -> tuple[str, str]:
    """A device for the demo, created once; its key is kept (0600) in the data folder."""
    path = settings.data_dir / "demo-device.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["device_id"], saved["api_key"]
    device, key = register_device(open_store(settings), lot_id)
    path.write_text(json.dumps({"device_id": device.device_id, "lot_id": lot_id, "api_key": key}))
    path.chmod(0o600)
    return device.device_id, key


def run_demo(settings: Settings, host: str, port: int | None, sample: Path, dagster_port: int | None = None,
             pipeline: bool = True) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    print(f"[demo] data folder: {settings.data_dir.resolve()}")
    print(f"[demo] importing sample data {sample.name} (idempotent)")
    report = import_csv(store, sample, progress=True)
    print("[demo] " + report.summary().replace("\n", "\n[demo] "))
    lots = store.list_lots()
    device_id, key = demo_device_key(settings, lots[0].lot_id)
    store.close()
    if pipeline:
        from parking_core.pipeline_runner import QUICK, run_pipeline

        print("[demo] running the daily pipeline once (quick model): export, drift, train, register, evaluate")
        print("[demo] " + run_pipeline(settings, **QUICK).summary().replace("\n", "\n[demo] "), flush=True)

    port = port or settings.api_port
    env = {**os.environ, "PARKCAST_DATA_DIR": str(settings.data_dir.resolve())}
    supervisor = Supervisor()
    try:
        api = supervisor.start(
            "api", [sys.executable, "-m", "parking_core.cli", "serve", "--host", host, "--port", str(port)], env
        )
        base = f"http://{host}:{port}"
        dagster_url = None
        if pipeline:
            dagster_port = dagster_port or free_port(host)
            dagster_env = {**env, "DAGSTER_HOME": str((settings.data_dir / "dagster").resolve())}
            dagster = supervisor.start(
                "dagster",
                [sys.executable, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", host, "-p",
                 str(dagster_port)],
                dagster_env,
            )
            dagster_url = f"http://{host}:{dagster_port}"
            wait_http(f"{dagster_url}/server_info", timeout=120, proc=dagster)
        wait_http(f"{base}/healthz", proc=api)
        print(
            f"\n[demo] parkcast is up\n"
            f"  API            {base}/v1/lots\n"
            f"  API docs       {base}/docs\n"
            + (f"  Dagster UI     {dagster_url} (pipeline graph, runs, checks)\n" if dagster_url else "")
            + f"  demo device    {device_id} (lot {lots[0].lot_id}), key in {settings.data_dir}/demo-device.json\n"
            f"  try:           curl -s {base}/v1/lots | head -c 400\n"
            f"  Ctrl-C stops everything.\n",
            flush=True,
        )
        name, code = supervisor.wait_any()
        print(f"[demo] {name} exited with {code}; stopping")
        return code or 1
    except KeyboardInterrupt:
        print("\n[demo] stopping")
        return 0
    finally:
        supervisor.stop()
