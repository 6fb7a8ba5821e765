"""The `parkcast` command line. Each command is a thin wrapper over parking_core (or the adapter
that owns the job: sagemaker_adapter for the SageMaker pipeline, slot_training for the edge model)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from parking_core.config import get_settings
from parking_core.store import DeviceExistsError, NotFoundError, Store, open_store

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CSV = REPO / "data" / "sample" / "birmingham_occupancy.csv"


def _store() -> Store:
    return open_store(get_settings())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """parkcast: smart parking with occupancy forecasts and drift-gated retraining."""
    from pydantic import ValidationError

    try:
        settings = get_settings()
    except ValidationError as exc:  # a PARKCAST_* variable out of range: say which, not a traceback
        raise click.ClickException("bad settings: " + "; ".join(
            f"PARKCAST_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())) from None
    logging.basicConfig(
        level=logging.DEBUG if verbose else settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not verbose:
        # Training libraries are chatty at INFO (hardware summaries, tips); keep our own lines.
        for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)


@main.command()
@click.option("--host", default=None, help="Bind address (default PARKCAST_API_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default PARKCAST_API_PORT, 8000).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the HTTP API."""
    import uvicorn

    settings = get_settings()
    open_store(settings).close()  # create the schema once, before workers race to do it
    uvicorn.run(
        "parking_core.api.app:create_served_app",
        factory=True,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@main.command("serve-model")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Model package folder (default /opt/ml/model when it holds one, else the production version).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="SageMaker containers listen on 8080.")
@click.option("--threads", type=int, default=1, show_default=True, help="onnxruntime intra-op threads.")
def serve_model(model_dir: Path | None, host: str, port: int, threads: int) -> None:
    """Run the forecast endpoint (GET /ping, POST /invocations)."""
    from parking_core.serving.app import run_endpoint

    try:
        run_endpoint(model_dir, host, port, threads)
    except (FileNotFoundError, LookupError, ValueError) as exc:
        raise click.ClickException(f"cannot load the model: {exc}") from None


@main.command("import-csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--columns", default=None,
              help="Column mapping: lot=...,time=...,occupied=... (or free=...),capacity=...")
@click.option("--timezone", default=None,
              help="IANA timezone of naive times (default: the store's lots', else Europe/London).")
@click.option("--device-id", default="csv-import", show_default=True, help="Device id recorded on the readings.")
@click.option("--step-minutes", type=int, default=30, show_default=True, help="Grid step for new lots.")
@click.option("--show-rejected", type=int, default=10, show_default=True, help="Rejected rows to list.")
def import_csv_command(
    file: Path, columns: str | None, timezone: str | None, device_id: str, step_minutes: int, show_rejected: int
) -> None:
    """Import a CSV of readings (Birmingham format out of the box). Idempotent."""
    from parking_core.csv_import import BIRMINGHAM, ColumnMapping, CsvFormatError, import_csv

    try:
        mapping = ColumnMapping.parse(columns) if columns else BIRMINGHAM
        report = import_csv(
            _store(),
            file,
            mapping,
            timezone,  # None: the store's lots' timezone (Europe/London for an empty store)
            device_id=device_id,
            step_minutes=step_minutes,
        )
    except CsvFormatError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    for rejection in report.rejected[:show_rejected]:
        click.echo(f"  {rejection}")


@main.command("lots")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lots_command(as_json: bool) -> None:
    """List lots with their latest reading."""
    from parking_core.service import list_lots

    lots = list_lots(_store())
    if as_json:
        click.echo(json.dumps(lots, indent=2))
        return
    click.echo(f"{'lot_id':<20} {'capacity':>8} {'occupied':>8} {'rate':>6}  last reading (UTC)")
    for lot in lots:
        latest = lot["latest"] or {}
        click.echo(
            f"{lot['lot_id']:<20} {lot['capacity']:>8} {latest.get('occupied', '-'):>8} "
            f"{latest.get('occupancy_rate', '-'):>6}  {latest.get('observed_at', 'never')}"
        )


@main.group()
def devices() -> None:
    """Manage edge devices and their API keys."""


@devices.command("add")
@click.argument("lot")
@click.option("--device-id", default=None, help="Default: <lot>-cam-<n>.")
def devices_add(lot: str, device_id: str | None) -> None:
    """Register a device for LOT and print its API key (shown once, stored hashed)."""
    from parking_core.devices import register_device

    try:
        device, key = register_device(_store(), lot, device_id)
    except (NotFoundError, DeviceExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"device_id: {device.device_id}\nlot_id:    {device.lot_id}", err=True)
    click.echo("api key (shown once, keep it secret):", err=True)
    click.echo(key)


@devices.command("list")
def devices_list() -> None:
    """List devices."""
    for d in _store().list_devices():
        state = "active" if d.active else f"revoked {d.revoked_at:%Y-%m-%d %H:%M}"
        click.echo(f"{d.device_id:<28} {d.lot_id:<20} created {d.created_at:%Y-%m-%d %H:%M}  {state}")


@devices.command("revoke")
@click.argument("device_id")
def devices_revoke(device_id: str) -> None:
    """Revoke a device's key: its next request is refused."""
    try:
        device = _store().revoke_device(device_id, datetime.now(UTC))
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {device.device_id} at {device.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


def _train_config(horizon: int, architectures: str, max_epochs: int | None, seed: int):
    from parking_core.forecasting.training import TrainConfig

    cfg = TrainConfig(horizon=horizon, architectures=tuple(a.strip() for a in architectures.split(",")), seed=seed)
    if max_epochs is not None:
        cfg.max_epochs = max_epochs
    return cfg


_model_options = [
    click.option(
        "--architectures", default="gbm", show_default=True,
        help="gbm (correction to the weekly level-adjusted forecast, rolling-origin folds), or the networks "
             "tft,nhits (the best on validation is kept)."
    ),
    click.option("--max-epochs", type=int, default=None, help="Cap on epochs per candidate (early stopping decides)."),
    click.option("--seed", type=int, default=42, show_default=True),
]


def _with_model_options(fn):
    for option in reversed(_model_options):
        fn = option(fn)
    return fn


def _read_csv(path: Path, columns: str | None, timezone: str | None):
    from parking_core.csv_import import BIRMINGHAM, BIRMINGHAM_TIMEZONE, ColumnMapping, CsvFormatError, read_frame

    try:
        mapping = ColumnMapping.parse(columns) if columns else BIRMINGHAM
        frame, rejected = read_frame(path, mapping, timezone or BIRMINGHAM_TIMEZONE, strict=True)
    except CsvFormatError as exc:
        raise click.ClickException(str(exc)) from None
    if rejected:
        click.echo(f"{path.name}: {len(rejected)} rows dropped by cleaning rules (first: {rejected[0]})", err=True)
    return frame


@main.command()
@click.option("--train", "train_csv", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--test", "test_csv", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--horizon", type=int, default=8, show_default=True, help="Steps ahead (grid slots).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PRED.csv to write.")
@click.option("--columns", default=None, help="Column mapping, as for import-csv.")
@click.option("--timezone", default=None, help="IANA timezone of naive times (default Europe/London).")
@click.option("--step-minutes", type=int, default=30, show_default=True)
@click.option("--save-model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the model package fitted on TRAIN here.")
@_with_model_options
def backtest(train_csv, test_csv, horizon, out, columns, timezone, step_minutes, save_model, architectures,
             max_epochs, seed) -> None:
    """Fit on TRAIN only, then walk through TEST forecasting every later slot of each day."""
    from parking_core.csv_import import BIRMINGHAM_TIMEZONE
    from parking_core.forecasting.workflows import backtest as run

    tz = timezone or BIRMINGHAM_TIMEZONE
    train_frame = _read_csv(train_csv, columns, tz)
    test_frame = _read_csv(test_csv, columns, tz)
    cfg = _train_config(horizon, architectures, max_epochs, seed)
    try:
        report = run(train_frame, test_frame, tz, step_minutes, horizon, cfg, package_dir=save_model)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    report.result.predictions_csv().to_csv(out, index=False, float_format="%.5f")
    click.echo(f"MAE of the occupancy rate per horizon (intra-day), {len(report.result.scored())} scored points:")
    click.echo(report.table())
    click.echo(f"predictions: {out}")


@main.command()
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Train on this CSV instead of the store.")
@click.option("--columns", default=None)
@click.option("--timezone", default=None)
@click.option("--horizon", type=int, default=8, show_default=True)
@click.option("--step-minutes", type=int, default=30, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Package folder (default <data dir>/models/<version>).")
@_with_model_options
def train(csv_path, columns, timezone, horizon, step_minutes, out, architectures, max_epochs, seed) -> None:
    """Train the forecaster on every lot and write a model package."""
    from parking_core.forecasting.models_dir import install_package, store_training_frame
    from parking_core.forecasting.workflows import train_package

    settings = get_settings()
    import tempfile

    try:  # what the data or the options cannot give (no lots, two grids, gbm with a network) is a message
        if csv_path is not None:
            tz = timezone or "Europe/London"
            frame = _read_csv(csv_path, columns, tz)
        else:
            frame, tz, step_minutes = store_training_frame(_store())
        cfg = _train_config(horizon, architectures, max_epochs, seed)
        with tempfile.TemporaryDirectory() as tmp:
            package, _ = train_package(frame, tz, step_minutes, Path(out or tmp) / "package", cfg)
            target = package.path if out else install_package(settings, package)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    metrics = package.metrics
    click.echo(f"model {package.version} ({metrics['selected']}) -> {target}")
    if metrics["selected"] != "gbm":  # the networks compared on their validation block
        for arch, m in metrics["candidates"].items():
            click.echo(f"  {arch:<6} validation intra-day MAE {m['val_intraday_mae']:.4f}  epochs {m['epochs']}")
    rolling = metrics.get("rolling_origin")
    if rolling is not None:
        from parking_core.forecasting.correction_training import fold_table

        if rolling["folds"]:
            click.echo(fold_table(rolling["folds"]))
        verdict = "does NOT beat (promotion will refuse it)" if package.below_floor else "beats"
        click.echo(f"rolling-origin: the model {verdict} the weekly level-adjusted baseline"
                   + (f" ({rolling['mae']:.4f} against {rolling['weekly_level_mae']:.4f})" if rolling["folds"] else
                      f": {rolling.get('note', '')}"))
    else:
        click.echo("no rolling-origin evidence in this package: promotion will refuse it")


@main.command()
@click.option("--lot", "lot_id", required=True)
@click.option("--at", default=None, help="Forecast origin, ISO 8601 (naive = the lot's local time); default now.")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Model package (default: the current one in the data folder).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--save", is_flag=True, help="Store the forecast.")
def forecast(lot_id, at, model_dir, as_json, save) -> None:
    """Forecast a lot's next hours with the ONNX model (onnxruntime)."""
    from zoneinfo import ZoneInfo

    from parking_core.forecasting.models_dir import current_package
    from parking_core.forecasting.package import ModelPackage
    from parking_core.forecasting.serve import forecast_lot
    from parking_core.forecasting.workflows import parse_local

    store = _store()
    lot = store.get_lot(lot_id)
    if lot is None:
        raise click.ClickException(f"no lot {lot_id!r}")
    try:
        package = ModelPackage.load(model_dir) if model_dir else current_package(get_settings())
        forecaster = package.forecaster()
        when = parse_local(at, lot.timezone) if at else None
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if save and when is not None and when > datetime.now(UTC):  # it would hide every real forecast until then
        raise click.ClickException(f"--at {at} is in the future: a forecast issued then cannot be saved now")
    result = forecast_lot(store, lot_id, package, forecaster, at=when)
    if save:
        store.put_forecast(result)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    zone = ZoneInfo(lot.timezone)
    click.echo(f"{lot_id}: model {result.model_version} ({result.source}), issued {result.issued_at.astimezone(zone)}")
    click.echo(f"{'local time':<17} {'p10':>6} {'p50':>6} {'p90':>6} {'P(free)':>8}")
    for step in result.steps:
        click.echo(
            f"{step.target_time.astimezone(zone):%Y-%m-%d %H:%M}  {step.p10:>6.3f} {step.p50:>6.3f} {step.p90:>6.3f} "
            f"{step.prob_free:>8.3f}"
        )


@main.group()
def registry() -> None:
    """The model registry: versions, approval, production (PARKCAST_REGISTRY=local|sagemaker)."""


def _registry():
    from parking_core.registry import open_registry

    settings = get_settings()
    return open_registry(settings), settings.model_group


@registry.command("list")
def registry_list() -> None:
    """Every version of the model group, with its status and key metrics."""
    reg, group = _registry()
    production = reg.production(group)
    click.echo(f"{'version':>7}  {'status':<22} {'created (UTC)':<17} {'val MAE':>8}  production")
    for v in reg.list(group):
        mae = v.metrics.get("val_intraday_mae")
        flag = "<- production" if production and production.version == v.version else ""
        click.echo(f"{v.version:>7}  {v.status:<22} {v.created_at:%Y-%m-%d %H:%M} "
                   f"{'-' if mae is None else f'{mae:.4f}':>8}  {flag}")


@registry.command("show")
@click.argument("version", type=click.IntRange(1, 2**63 - 1))
def registry_show(version: int) -> None:
    """One version in full: metrics, lineage, evaluation, promotion decision."""
    from parking_core.registry import RegistryError

    reg, group = _registry()
    try:
        click.echo(json.dumps(reg.get(group, version).to_dict(), indent=2, default=str))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


def _set_status(version: int, status, note: str) -> None:
    from parking_core.registry import ApprovalStatus, RegistryError, reject

    reg, group = _registry()
    try:
        if status == ApprovalStatus.REJECTED:
            v = reject(reg, group, version, note)
        else:
            v = reg.set_status(group, version, status, note)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"version {v.version}: {v.status}")


@registry.command("approve")
@click.argument("version", type=click.IntRange(1, 2**63 - 1))
@click.option("--note", required=True, help="Who approves and why (kept with the version).")
def registry_approve(version: int, note: str) -> None:
    """Approve a version (a person's decision; promotion follows if it is not worse)."""
    from parking_core.registry import ApprovalStatus

    _set_status(version, ApprovalStatus.APPROVED, note)


@registry.command("reject")
@click.argument("version", type=click.IntRange(1, 2**63 - 1))
@click.option("--note", required=True, help="Who rejects and why.")
def registry_reject(version: int, note: str) -> None:
    """Reject a version (not the one in production: roll back first)."""
    from parking_core.registry import ApprovalStatus

    _set_status(version, ApprovalStatus.REJECTED, note)


def _deploy():
    """What puts a version behind the forecast endpoint here: the local CURRENT package, or the
    SageMaker serverless endpoint when the registry is SageMaker's."""
    settings = get_settings()
    if settings.registry == "sagemaker":
        from parking_core.aws.runtime import runtime

        return runtime().deployer
    from parking_core.forecasting.models_dir import deploy_locally

    return lambda version: deploy_locally(settings, version)


@registry.command("rollback")
def registry_rollback() -> None:
    """Put the previous production version back in production and behind the endpoint."""
    from parking_core.registry import RegistryError, rollback

    reg, group = _registry()
    try:
        v = rollback(reg, group, _deploy())
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"production is now version {v.version} ({v.model_uri}), deployed")


@main.group()
def pipeline() -> None:
    """The daily MLOps pipeline: run the Dagster graph here, or compile it for SageMaker."""


@pipeline.command("run")
@click.option("--force-retrain", is_flag=True, help="Retrain even without drift.")
@click.option("--architectures", default=None, help="Override the candidates, e.g. tft.")
@click.option("--max-epochs", type=int, default=None)
def pipeline_run(force_retrain: bool, architectures: str | None, max_epochs: int | None) -> None:
    """Export every day not exported yet, then run drift -> [retrain] -> register -> evaluate."""
    from parkcast.pipeline_runner import run_pipeline

    overrides: dict = {}
    if architectures:
        overrides["architectures"] = architectures
    if max_epochs:
        overrides["max_epochs"] = max_epochs
    outcome = run_pipeline(get_settings(), force_retrain=force_retrain, **overrides)
    click.echo(outcome.summary())
    if not outcome.success:
        raise click.ClickException("the pipeline run failed; production is unchanged")


@main.command("train-slots")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=REPO / "data/sample/slots/cnrpark_camA/labels.csv", show_default=True,
              help="patch CSV with path, occupied, split (train rows are trained on, val rows checked)")
@click.option("--frames", "frame_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=[REPO / "data/sample/slots/pklot_pucpr_more/labeled"], show_default=True,
              help="labelled frames (+ PKLot XML) to train on (repeatable)")
@click.option("--check-frames", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=REPO / "data/sample/slots/pklot_pucpr_frames/labeled", show_default=True,
              help="labelled frames never trained on, to check the model")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=REPO / "edge_runtime/models",
              show_default=True)
@click.option("--epochs", type=int, default=None, help="default: the training config's")
@click.option("--teacher", type=click.Choice(["0", "224"]), default="0", show_default=True,
              help="224: put the ImageNet teacher in the model (better on unseen cameras with no calibration, "
                   "worse on known ones and under calibration or adaptation; ~5 MB, ~200 patches/s a core, "
                   "~240 MB daemon)")
@click.option("--loso", type=click.Path(dir_okay=False, path_type=Path), default=REPO / "docs/slots-loso.jsonl",
              show_default=True, help="results of benchmarks/slots.py --json, for the model card")
def train_slots(labels: Path, frame_dirs: tuple[Path, ...], check_frames: Path, out: Path, epochs: int | None,
                teacher: str, loso: Path) -> None:
    """Train the edge's slot classifier (ONNX fp32 + int8, metrics.json, MODEL_CARD.md)."""
    from slot_training.training import SlotTrainConfig, model_card, train_from_data

    logging.getLogger("parkcast.slots").setLevel(logging.INFO)
    # The teacher option was measured with the design before the strong colour cast: it keeps that.
    config = SlotTrainConfig(teacher=int(teacher), **({"cast": 0.0} if int(teacher) else {}),
                             **({} if epochs is None else {"epochs": epochs}))
    if config.teacher and out.resolve() == (REPO / "edge_runtime/models").resolve():
        raise click.ClickException("--teacher 224 builds an optional model: give --out DIR (the default folder "
                                   "holds the packaged model the edge runs)")
    if config.teacher and loso == REPO / "docs/slots-loso.jsonl":  # the card shows this design's own figures
        loso = REPO / "docs/slots-loso-teacher.jsonl"
    metrics = train_from_data(labels, list(frame_dirs), check_frames, out, config)
    results = [json.loads(line) for line in loso.read_text().splitlines() if line.strip()] if loso.exists() else None
    (out / "MODEL_CARD.md").write_text(model_card(metrics, results))
    for name in ("fp32", "int8"):
        m = metrics[name]
        click.echo(f"{name}: {m['size_bytes'] / 1024:.0f} KB, "
                   + ", ".join(f"{check} accuracy {m[check]['accuracy']:.4f}" for check in metrics["checks"]))


def _add_sagemaker_commands() -> None:
    """compile / upsert / start / run-local live in sagemaker_adapter (needs the pipeline extra)."""
    try:
        from sagemaker_adapter import cli as sagemaker_cli
    except ImportError:  # an install without the pipeline extra
        return
    for command in (sagemaker_cli.compile_command, sagemaker_cli.upsert_command, sagemaker_cli.start_command,
                    sagemaker_cli.run_local_command):
        pipeline.add_command(command)


_add_sagemaker_commands()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="API port (default PARKCAST_API_PORT, 8000).")
@click.option("--sample", type=click.Path(exists=True, path_type=Path), default=SAMPLE_CSV, show_default=True)
@click.option("--dagster-port", type=int, default=3000, show_default=True)
@click.option("--no-pipeline", is_flag=True, help="Skip the pipeline run and the Dagster UI.")
@click.option("--speed", type=click.FloatRange(min=1.0), default=1.0, show_default=True,
              help="Replay this many times faster than the clock (the time of day then drifts from the data's).")
def demo(host: str, port: int | None, sample: Path, dagster_port: int, no_pipeline: bool, speed: float) -> None:
    """Bring the local system up on the embedded default with the sample replayed in the present."""
    from parkcast.demo import run_demo

    sys.exit(run_demo(get_settings(), host, port, sample, dagster_port=dagster_port, pipeline=not no_pipeline,
                      speed=speed))


@main.command()
@click.option("--api-url", required=True, help="The API to post to, e.g. http://127.0.0.1:8000.")
@click.option("--sample", type=click.Path(exists=True, path_type=Path), default=SAMPLE_CSV, show_default=True)
@click.option("--speed", type=click.FloatRange(min=1.0), default=1.0, show_default=True)
@click.option("--camera", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder where the camera lot's scene is put for its edge daemon (default: no camera lot).")
def replay(api_url: str, sample: Path, speed: float, camera: Path | None) -> None:
    """Keep posting the sample, moved into the present, through the API (one device per car park).

    Run by `parkcast demo`, which imports the moved history and creates the devices first."""
    import signal
    import threading

    from parkcast.replay import Replayer

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    logging.getLogger("parkcast.replay").setLevel(logging.INFO)
    try:
        replayer = Replayer(get_settings(), api_url, sample, speed, camera)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    replayer.run(stopping)


if __name__ == "__main__":
    main()
