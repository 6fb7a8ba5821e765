"""`parkcast demo`: the whole local system on the embedded default, with the sample replayed in the
present (see parkcast.replay for the mapping).

The terminal gets a short summary and one line per notable event; every process's full log goes
to <data dir>/logs/<name>.log. Each service runs as a child process with default signal handling
(dagster dev, for one, ignores SIGINT/SIGTERM otherwise); Ctrl-C stops them all by PID.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from parkcast.processes import Supervisor, free_port, wait_http
from parkcast.replay import (
    CAMERA_DEVICE,
    CAMERA_LOT,
    PKLOT_SLOT_MAP,
    device_keys,
    opening_hours,
    replay_dir,
    saved_shift,
)
from parking_core.config import Settings
from parking_core.contracts import Reading
from parking_core.csv_import import BIRMINGHAM, BIRMINGHAM_TIMEZONE, import_csv, read_readings
from parking_core.devices import register_device
from parking_core.store import Store, open_store

REPO = Path(__file__).resolve().parent.parent
PIPELINE_ESTIMATE_S = 60.0  # the pipeline on 2 cores; later runs use the last run's time
STEP_LABELS = {"forecaster": "training the forecaster", "drift_check": "drift check",
               "model_evaluation": "evaluating the new version", "registered_model": "registering the version",
               "consolidated_dataset": "consolidating the dataset"}


def say(line: str) -> None:
    print(line, flush=True)


def demo_device_key(settings: Settings, lot_id: str, name: str = "demo-device",
                    device_id: str | None = None) -> tuple[str, str]:
    """A device for the person trying the API, created once; its key is kept (0600) in the data folder."""
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
        say(f"  model version {version} approved by the demo operator; promotion: {decision['reason']}")
        production = registry.production(group)
    return production.lineage.get("model_version", str(production.version)) if production else None


# -- the sample in the present -----------------------------------------------------------


def prepare_replay(settings: Settings, store: Store, sample: Path, today: date) -> dict:
    """Import the sample moved by whole weeks (idempotent: the shift is kept), give the car parks
    their opening hours, add the camera lot and one device per car park."""
    readings = [r for _, r in read_readings(sample, BIRMINGHAM, BIRMINGHAM_TIMEZONE, "csv") if isinstance(r, Reading)]
    zone = ZoneInfo(BIRMINGHAM_TIMEZONE)
    last_day = max(r.observed_at.astimezone(zone).date() for r in readings)
    weeks = saved_shift(settings, sample, last_day, today)
    report = import_csv(store, sample, shift_days=7 * weeks, progress=False)
    local_times: dict[str, list[datetime]] = {}
    for r in readings:
        local_times.setdefault(r.lot_id, []).append(r.observed_at.astimezone(zone))
    for lot in store.list_lots():
        if lot.lot_id in local_times and lot.opens_at is None:
            opens, closes = opening_hours(local_times[lot.lot_id], lot.grid_step_minutes)
            store.put_lot(lot.model_copy(update={"opens_at": opens, "closes_at": closes}))
    if store.get_lot(CAMERA_LOT.lot_id) != CAMERA_LOT:  # absent, or from an older demo on another grid
        store.put_lot(CAMERA_LOT)
    lot_ids = sorted(local_times) + [CAMERA_LOT.lot_id]
    device_keys(settings, store, lot_ids)
    return {"weeks": weeks, "last_day": last_day + timedelta(weeks=weeks), "lots": len(local_times),
            "accepted": report.accepted, "rows": report.accepted + report.duplicates}


def edge_config(settings: Settings, api_url: str) -> Path:
    """The edge daemon of the camera lot, watching the folder where the replay puts the scene."""
    edge = (settings.data_dir / "edge").resolve()
    edge.mkdir(parents=True, exist_ok=True)
    key = json.loads((replay_dir(settings) / "devices.json").read_text())[CAMERA_LOT.lot_id]
    key_file = edge / "api-key"
    key_file.write_text(key["api_key"] + "\n")
    key_file.chmod(0o600)
    config = edge / "edge.toml"
    config.write_text(
        f'api_url = "{api_url}"\nlot_id = "{CAMERA_LOT.lot_id}"\ndevice_id = "{key["device_id"]}"\n'
        f'api_key_file = "api-key"\nslot_map = "{PKLOT_SLOT_MAP}"\nheartbeat_s = 60\n'
        f'outbox = "outbox.sqlite3"\nhealth_file = "health.json"\n'
        f'[source]\nkind = "folder"\npath = "camera"\ninterval_s = 5\nloop = true\n'
    )
    return config


# -- a quiet terminal ---------------------------------------------------------------------


def quiet_logging(log_file: Path) -> None:
    """This process's log records and warnings go to the file, not the terminal."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    logging.captureWarnings(True)


@contextmanager
def output_to(log_file: Path) -> Iterator[TextIO]:
    """Everything written to stdout/stderr (Python, Dagster, Lightning, C libraries) goes to the
    file; yields a stream to the real terminal for the progress bar."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    terminal = os.fdopen(os.dup(saved[1]), "w")
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        terminal.close()


def _current_step(instance, since: float) -> str | None:
    """The step the newest Dagster run is in, from the instance's event log."""
    runs = instance.get_runs(limit=1)
    if not runs:
        return None
    started = [e for e in instance.all_logs(runs[0].run_id) if e.is_dagster_event and e.timestamp >= since
               and e.dagster_event.event_type_value == "STEP_START"]
    return started[-1].step_key if started else None


def run_pipeline_with_progress(settings: Settings, log_file: Path):
    """The daily pipeline in this process (it trains the shipped model), its output in the log
    file, a bar with an estimate on the terminal (the estimate is the last run's time here)."""
    from tqdm import tqdm

    from parkcast.pipeline_runner import dagster_instance, run_pipeline

    timings = settings.data_dir / "logs" / "timings.json"
    saved = json.loads(timings.read_text()) if timings.exists() else {}
    estimate = float(saved.get("pipeline_s", PIPELINE_ESTIMATE_S))
    outcome, error = None, None
    start = time.time()

    def work() -> None:
        nonlocal outcome, error
        try:
            outcome = run_pipeline(settings)
        except Exception as exc:  # noqa: BLE001 - reported on the terminal, traceback in the log
            logging.getLogger("parkcast.demo").exception("pipeline failed")
            error = exc

    with output_to(log_file) as terminal:
        instance = dagster_instance(settings)
        worker = threading.Thread(target=work, name="pipeline", daemon=True)  # Ctrl-C does not wait for it
        worker.start()
        tty = terminal.isatty()
        bar = tqdm(total=round(estimate), file=terminal, desc="  pipeline", unit="s",
                   bar_format="{desc:<44} {bar:24} {elapsed}<{remaining}", dynamic_ncols=False)
        shown = None
        while worker.is_alive():
            worker.join(timeout=1.0)
            try:
                step = _current_step(instance, start)
            except Exception:  # noqa: BLE001 - the bar is a nicety; the run goes on
                step = None
            bar.n = min(time.time() - start, estimate * 0.99)
            if step and step != shown:
                shown = step
                bar.set_description_str(f"  pipeline: {STEP_LABELS.get(step, step.replace('_', ' '))}", refresh=False)
                bar.refresh()
            elif tty:  # a log or a pipe gets a line per step, not one per second
                bar.refresh()
        bar.n = bar.total
        bar.set_description_str("  pipeline")
        bar.close()
    took = time.time() - start
    if error is not None:
        raise error
    if outcome.success:
        timings.write_text(json.dumps({**saved, "pipeline_s": round(took)}))
    return outcome, took


# -- the demo -----------------------------------------------------------------------------


def run_demo(settings: Settings, host: str, port: int | None, sample: Path, dagster_port: int | None = None,
             pipeline: bool = True, speed: float = 1.0) -> int:
    data = settings.data_dir.resolve()
    logs = data / "logs"
    data.mkdir(parents=True, exist_ok=True)
    # Ctrl-C, and a SIGTERM from a process manager, stop every child before the demo exits.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    quiet_logging(logs / "demo.log")
    say(f"parkcast demo: data in {data}, every process's log in {logs}/")
    store = open_store(settings)
    replay = prepare_replay(settings, store, sample, datetime.now(UTC).date())
    say(f"  sample: {replay['lots']} Birmingham car parks, {replay['rows']} readings moved {replay['weeks']} weeks "
        f"to end on {replay['last_day']:%a %d %b} ({replay['accepted']} new)")
    lots = store.list_lots()
    device_id, _ = demo_device_key(settings, lots[0].lot_id)
    store.close()
    if pipeline:
        outcome, took = run_pipeline_with_progress(settings, logs / "pipeline.log")
        say(f"  pipeline finished in {took:.0f}s ({'success' if outcome.success else 'FAILED'}): "
            f"drift decision: {outcome.decision or 'none'}; materialized {len(outcome.materialized)} asset(s)")
    production = demo_production_model(settings)

    port = port or settings.api_port
    env = {**os.environ, "PARKCAST_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    supervisor = Supervisor()
    python = sys.executable
    try:
        endpoint_url = None
        if production:
            endpoint_port = free_port(host)
            endpoint_url = f"http://{host}:{endpoint_port}"
            endpoint = supervisor.start("endpoint", [python, "-m", "parkcast.cli", "serve-model", "--host", host,
                                                     "--port", str(endpoint_port)], env, logs / "endpoint.log")
            wait_http(f"{endpoint_url}/ping", timeout=60, proc=endpoint)
            env = {**env, "PARKCAST_PREDICTOR": "http", "PARKCAST_PREDICTOR_URL": endpoint_url}
        dagster_url = None
        if pipeline:
            dagster_port = dagster_port or free_port(host)
            dagster_url = f"http://{host}:{dagster_port}"
            dagster = supervisor.start(
                "dagster",
                [python, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", host, "-p",
                 str(dagster_port)],
                {**env, "DAGSTER_HOME": str(data / "dagster")}, logs / "dagster.log",
            )
            env = {**env, "PARKCAST_DAGSTER_URL": dagster_url}  # the dashboard's status page links to it
        base = f"http://{host}:{port}"
        api = supervisor.start("api", [python, "-m", "parkcast.cli", "serve", "--host", host, "--port", str(port)],
                               env, logs / "api.log")
        wait_http(f"{base}/healthz", proc=api)
        health = replay_dir(settings) / "health.json"
        health.unlink(missing_ok=True)
        replayer = supervisor.start("replay", [python, "-m", "parkcast.cli", "replay", "--api-url", base,
                                               "--sample", str(sample), "--speed", str(speed), "--camera",
                                               str(data / "edge" / "camera")], env, logs / "replay.log")
        _wait_file(health, replayer, timeout=600)
        config = edge_config(settings, base)
        supervisor.start("edge", [python, "-m", "edge_runtime.cli", "run", "--config", str(config)], env,
                         logs / "edge.log")
        if dagster_url:
            wait_http(f"{dagster_url}/server_info", timeout=120, proc=dagster)
        posted = json.loads(health.read_text())["posted"]
        log_names = ["demo"] + ["pipeline"] * pipeline + [name for name, _ in supervisor.procs]
        say(f"  replay caught up: {posted} reading(s) posted through the API, one device per car park")
        say(
            f"\nparkcast is up\n"
            f"  dashboard      {base}/\n"
            f"  status page    {base}/#/status (pipeline run, drift decision, model versions)\n"
            f"  API            {base}/v1/lots   docs {base}/docs\n"
            + (f"  Dagster UI     {dagster_url} (asset graph, runs, checks)\n" if dagster_url else "")
            + (f"  forecast endpoint {endpoint_url}/ping (model {production})\n" if endpoint_url
               else "  forecast endpoint: none (no model in production yet)\n")
            + f"  replay         Birmingham car parks in the present{f' at {speed:g}x' if speed != 1 else ''}; "
            f"camera lot {CAMERA_LOT.lot_id} by its edge daemon ({CAMERA_DEVICE})\n"
            f"  demo device    {device_id} (lot {lots[0].lot_id}), key in {data}/demo-device.json\n"
            f"  logs           {logs}/{{{','.join(log_names)}}}.log\n"
            f"  stop           Ctrl-C stops everything\n",
        )
        watch_events(settings, supervisor)
        return 1
    except KeyboardInterrupt:
        say("\nstopping")
        return 0
    finally:
        supervisor.stop()


def _wait_file(path: Path, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[3]} exited with {proc.returncode} (see its log)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not written within {timeout:.0f}s")
        time.sleep(0.3)


def watch_events(settings: Settings, supervisor: Supervisor, poll_s: float = 10.0) -> None:
    """One line per notable event while the demo runs (a pipeline run from Dagster's schedule, a
    drift decision, a promotion), until a child process exits."""
    from parking_core.objectstore import ObjectStore
    from parking_core.registry import open_registry
    from parking_core.status import system_status

    def snapshot() -> tuple:
        s = system_status(open_registry(settings), ObjectStore(settings.objects_url), settings.model_group)
        run = s["pipeline"] or {}
        return run.get("run_id"), run.get("decision"), s["models"]["production"]

    seen = snapshot()
    while True:
        for _ in range(int(poll_s * 2)):
            for name, proc in supervisor.procs:
                if proc.poll() is not None:
                    say(f"{name} exited with {proc.returncode} (see logs/{name}.log); stopping")
                    return
            time.sleep(0.5)
        try:
            now = snapshot()
        except Exception:  # noqa: BLE001  # nosec B112 - a status read racing a write: read again next poll
            continue
        if now[0] != seen[0]:
            say(f"  {datetime.now():%H:%M} pipeline run finished; drift decision: {now[1]}")
        if now[2] != seen[2]:
            say(f"  {datetime.now():%H:%M} model version {now[2]} approved and promoted to production")
        seen = now
