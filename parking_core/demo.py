"""`parkcast demo`: the whole local system on the embedded default, with sample data.

Each service runs as a child process with default signal handling (dagster dev, for one,
ignores SIGINT/SIGTERM otherwise); Ctrl-C stops them all by PID.
"""

from __future__ import annotations

import json
import os
import shutil
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
            with urllib.request.urlopen(url, timeout=2):  # nosec B310 - loopback URLs this module builds
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


# Headless Debian chromium for the browser tests and benchmarks/web.py; the flags keep it off a
# network it cannot reach (background services, component updates).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Supervisor:
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env, preexec_fn=_reset_signals)  # nosec B603 - our own commands
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


def demo_device_key(settings: Settings, lot_id: str, name: str = "demo-device",
                    device_id: str | None = None) -> tuple[str, str]:
    """A device for the demo, created once; its key is kept (0600) in the data folder."""
    path = settings.data_dir / f"{name}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["device_id"], saved["api_key"]
    device, key = register_device(open_store(settings), lot_id, device_id)
    path.write_text(json.dumps({"device_id": device.device_id, "lot_id": lot_id, "api_key": key}))
    path.chmod(0o600)
    return device.device_id, key


def demo_production_model(settings: Settings) -> str | None:
    """The demo plays the operator once: with nothing in production it approves the version its
    own pipeline run registered, then promotes it exactly as the promotion sensor would. In a
    real deployment a person approves (`parkcast registry approve`)."""
    from parking_core.forecasting.models_dir import deploy_locally
    from parking_core.mlops import promote_if_better
    from parking_core.registry import ApprovalStatus, open_registry

    registry, group = open_registry(settings), settings.model_group
    production = registry.production(group)
    if production is None:
        pending = [v for v in registry.list(group) if v.status == ApprovalStatus.PENDING]
        if not pending:
            return None
        version = pending[-1].version
        registry.set_status(group, version, ApprovalStatus.APPROVED, "approved by `make demo` (demo operator)")
        decision = promote_if_better(registry, group, version, lambda v: deploy_locally(settings, v))
        print(f"[demo] approved version {version} as the demo operator; promotion: {decision['reason']}")
        production = registry.production(group)
    return production.lineage.get("model_version", str(production.version)) if production else None


PKLOT = REPO / "data" / "sample" / "slots" / "pklot_pucpr_frames"


def demo_edge_config(settings: Settings, api_url: str) -> Path:
    """An edge daemon replaying the PKLot PUCPR frames into the local API, as a Pi would."""
    from parking_core.contracts import Lot

    store = open_store(settings)
    if store.get_lot("pucpr") is None:
        store.put_lot(Lot(lot_id="pucpr", name="PKLot PUCPR (edge replay)", capacity=100,
                          timezone="America/Sao_Paulo"))
    store.close()
    device_id, key = demo_device_key(settings, "pucpr", "demo-edge", "pi-pucpr-demo")
    edge = (settings.data_dir / "edge").resolve()
    frames = edge / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    for image in sorted(PKLOT.glob("*/*.jpg")):
        if not (frames / image.name).exists():
            shutil.copy(image, frames / image.name)
    config = edge / "edge.toml"
    config.write_text(
        f'api_url = "{api_url}"\nlot_id = "pucpr"\ndevice_id = "{device_id}"\napi_key_file = "api-key"\n'
        f'slot_map = "{PKLOT / "labeled" / "2012-09-11_15_16_58.xml"}"\nheartbeat_s = 60\n'
        f'outbox = "outbox.sqlite3"\nhealth_file = "health.json"\n'
        f'[source]\nkind = "folder"\npath = "frames"\ninterval_s = 5\nloop = true\n'
    )
    key_file = edge / "api-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return config


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

    production = demo_production_model(settings)
    port = port or settings.api_port
    env = {**os.environ, "PARKCAST_DATA_DIR": str(settings.data_dir.resolve())}
    supervisor = Supervisor()
    try:
        endpoint_url = None
        if production:
            endpoint_port = free_port(host)
            endpoint_url = f"http://{host}:{endpoint_port}"
            endpoint = supervisor.start("endpoint", [sys.executable, "-m", "parking_core.cli", "serve-model", "--host",
                                                     host, "--port", str(endpoint_port)], env)
            wait_http(f"{endpoint_url}/ping", timeout=60, proc=endpoint)
            env = {**env, "PARKCAST_PREDICTOR": "http", "PARKCAST_PREDICTOR_URL": endpoint_url}
        dagster_url = None
        if pipeline:
            dagster_port = dagster_port or free_port(host)
            dagster_url = f"http://{host}:{dagster_port}"
            dagster_env = {**env, "DAGSTER_HOME": str((settings.data_dir / "dagster").resolve())}
            dagster = supervisor.start(
                "dagster",
                [sys.executable, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", host, "-p",
                 str(dagster_port)],
                dagster_env,
            )
            env = {**env, "PARKCAST_DAGSTER_URL": dagster_url}  # the dashboard's status page links to it
        api = supervisor.start(
            "api", [sys.executable, "-m", "parking_core.cli", "serve", "--host", host, "--port", str(port)], env
        )
        base = f"http://{host}:{port}"
        edge_config = demo_edge_config(settings, base)
        supervisor.start("edge", [sys.executable, "-m", "edge_runtime.cli", "run", "--config", str(edge_config)], env)
        if dagster_url:
            wait_http(f"{dagster_url}/server_info", timeout=120, proc=dagster)
        wait_http(f"{base}/healthz", proc=api)
        print(
            f"\n[demo] parkcast is up\n"
            f"  dashboard      {base}/\n"
            f"  API            {base}/v1/lots\n"
            f"  API docs       {base}/docs\n"
            + (f"  Dagster UI     {dagster_url} (pipeline graph, runs, checks)\n" if dagster_url else "")
            + (f"  forecast endpoint {endpoint_url}/ping (model {production}); POSTed readings get forecasts\n"
               if endpoint_url else "  forecast endpoint: none (no model in production yet)\n")
            + f"  edge daemon    PKLot PUCPR frames replayed into lot pucpr ({edge_config.parent}/health.json)\n"
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
