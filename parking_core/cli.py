"""The `parkcast` command line. Each command is a thin wrapper over parking_core."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from parking_core.config import get_settings
from parking_core.store import DeviceExistsError, NotFoundError, Store, open_store

SAMPLE_CSV = Path(__file__).resolve().parent.parent / "data" / "sample" / "birmingham_occupancy.csv"


def _store() -> Store:
    return open_store(get_settings())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """parkcast: smart parking with occupancy forecasts and drift-gated retraining."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else get_settings().log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


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
        "parking_core.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@main.command("import-csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--columns", default=None, help="Column mapping: lot=...,time=...,occupied=...,capacity=...")
@click.option("--timezone", default=None, help="IANA timezone of naive times (Birmingham: Europe/London).")
@click.option("--device-id", default="csv-import", show_default=True, help="Device id recorded on the readings.")
@click.option("--step-minutes", type=int, default=30, show_default=True, help="Grid step for new lots.")
@click.option("--show-rejected", type=int, default=10, show_default=True, help="Rejected rows to list.")
def import_csv_command(
    file: Path, columns: str | None, timezone: str | None, device_id: str, step_minutes: int, show_rejected: int
) -> None:
    """Import a CSV of readings (Birmingham format out of the box). Idempotent."""
    from parking_core.csv_import import BIRMINGHAM, BIRMINGHAM_TIMEZONE, ColumnMapping, CsvFormatError, import_csv

    try:
        mapping = ColumnMapping.parse(columns) if columns else BIRMINGHAM
        report = import_csv(
            _store(),
            file,
            mapping,
            timezone or BIRMINGHAM_TIMEZONE,
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="API port (default PARKCAST_API_PORT, 8000).")
@click.option("--sample", type=click.Path(exists=True, path_type=Path), default=SAMPLE_CSV, show_default=True)
def demo(host: str, port: int | None, sample: Path) -> None:
    """Bring the local system up on the embedded default with the sample data."""
    from parking_core.demo import run_demo

    sys.exit(run_demo(get_settings(), host, port, sample))


if __name__ == "__main__":
    main()
