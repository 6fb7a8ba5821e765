from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from parkcast.processes import free_port, wait_http
from parking_core.config import Settings
from parking_core.contracts import Lot, Reading
from parking_core.csv_import import BIRMINGHAM, read_frame
from parking_core.forecasting.package import ModelPackage
from parking_core.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CSV = REPO / "data" / "sample" / "birmingham_occupancy.csv"

# moto and boto3 must never reach AWS.
# Fake credentials always, never a developer's real ones: no test may reach a real account.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SECURITY_TOKEN"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
for _profile in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_profile, None)
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-2")


def make_lot(lot_id: str = "LOT-A", capacity: int = 100) -> Lot:
    return Lot(lot_id=lot_id, name=f"Lot {lot_id}", capacity=capacity, timezone="Europe/London")


T0 = datetime(2016, 10, 4, 8, 0, tzinfo=UTC)


def make_reading(i: int = 0, lot_id: str = "LOT-A", device_id: str = "cam-1", occupied: int = 10, **kw) -> Reading:
    return Reading(
        lot_id=lot_id,
        device_id=device_id,
        observed_at=kw.pop("observed_at", T0 + timedelta(minutes=30 * i)),
        capacity=kw.pop("capacity", 100),
        occupied=occupied,
        **kw,
    )


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "store.sqlite3")
    yield store
    store.close()


@pytest.fixture
def dynamodb_store():
    from moto import mock_aws

    from parking_core.store.dynamodb import DynamoDBStore

    with mock_aws():
        store = DynamoDBStore(table_prefix="test", region="eu-west-2")
        store.create_tables()
        yield store


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request):
    """The same contract suite runs against every adapter."""
    return request.getfixturevalue(f"{request.param}_store")


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen
    data_dir: Path
    port: int

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=20)


def start_server(data_dir: Path, port: int | None = None, workers: int = 1, **env_vars: str) -> LiveServer:
    port = port or free_port()
    env = {**os.environ, "PARKCAST_DATA_DIR": str(data_dir), **env_vars}
    proc = subprocess.Popen(
        [sys.executable, "-m", "parkcast.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        env=env,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", timeout=60, proc=proc)
    return LiveServer(url, proc, data_dir, port)


def start_endpoint(model_dir: Path, port: int | None = None) -> LiveServer:
    """The forecast endpoint (serving app) on loopback."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parkcast.cli", "serve-model", "--model", str(model_dir), "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/ping", timeout=60, proc=proc)
    return LiveServer(url, proc, model_dir, port)


def load_sample(store, keep, transform=None) -> None:
    """The sample readings `keep` selects (cleaned by the importer's rules, deduplicated), with an
    optional transform, into `store`; their lots are created on first sight."""
    from parking_core.csv_import import read_readings

    unique: dict = {}
    for _, r in read_readings(SAMPLE_CSV, BIRMINGHAM, "Europe/London", "csv-import"):
        if isinstance(r, Reading) and keep(r):
            unique.setdefault((r.lot_id, r.observed_at), transform(r) if transform else r)
    batch = sorted(unique.values(), key=lambda r: (r.observed_at, r.lot_id))
    for lot_id in sorted({r.lot_id for r in batch}):
        if store.get_lot(lot_id) is None:
            capacity = max(r.capacity for r in batch if r.lot_id == lot_id)
            store.put_lot(Lot(lot_id=lot_id, name=lot_id, capacity=capacity, timezone="Europe/London"))
    for i in range(0, len(batch), 100):
        store.put_readings(batch[i : i + 100])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture
def live_server(data_dir: Path) -> Iterator[LiveServer]:
    server = start_server(data_dir)
    yield server
    if server.proc.poll() is None:
        server.kill(signal.SIGTERM)


# -- tiny trained forecasters, shared by the forecasting, serving and Lambda tests ------------

LOTS = ["BHMBCCMKT01", "BHMEURBRD01", "Broad Street", "NIA South", "Shopping", "Others-CCCPS8"]
SPLIT = pd.Timestamp("2016-11-21", tz="Europe/London")


@pytest.fixture(scope="session")
def readings():
    frame, _ = read_frame(SAMPLE_CSV, BIRMINGHAM, "Europe/London")
    return frame[frame["lot_id"].isin(LOTS)].reset_index(drop=True)


@pytest.fixture(scope="session")
def train_frame(readings):
    return readings[readings["observed_at"] < SPLIT]


def tiny_config(architecture: str):
    from parking_core.forecasting.training import TrainConfig

    if architecture == "gbm":
        return TrainConfig(architectures=("gbm",), gbm_iterations=20)
    # NHiTS also goes through the refit on every day; TFT keeps its validated weights.
    return TrainConfig(architectures=(architecture,), max_epochs=1, limit_train_batches=12, hidden_size=8,
                       batch_size=64, refit=architecture == "nhits")


_PACKAGES: dict[str, ModelPackage] = {}


def trained(architecture: str, train_frame, tmp_path_factory) -> ModelPackage:
    from parking_core.forecasting.workflows import train_package

    if architecture not in _PACKAGES:
        out = tmp_path_factory.mktemp(architecture) / "package"
        _PACKAGES[architecture], _ = train_package(
            train_frame, "Europe/London", 30, out, tiny_config(architecture), progress=False
        )
    return _PACKAGES[architecture]


@pytest.fixture(scope="session", params=["tft", "nhits"])
def package(request, train_frame, tmp_path_factory) -> ModelPackage:
    return trained(request.param, train_frame, tmp_path_factory)


@pytest.fixture(scope="session")
def tft_package(train_frame, tmp_path_factory) -> ModelPackage:
    return trained("tft", train_frame, tmp_path_factory)


@pytest.fixture(scope="session")
def gbm_package(train_frame, tmp_path_factory) -> ModelPackage:
    return trained("gbm", train_frame, tmp_path_factory)
