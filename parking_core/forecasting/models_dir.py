"""Model packages in the local data folder: <data dir>/models/<version>/, CURRENT names the one
that answers forecasts. (The model registry decides what becomes CURRENT.)"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pandas as pd

from parking_core.config import Settings
from parking_core.forecasting.package import ModelPackage
from parking_core.forecasting.serve import readings_frame
from parking_core.store import ReadingStore


def models_root(settings: Settings):
    return settings.data_dir / "models"


def install_package(settings: Settings, package: ModelPackage, make_current: bool = True):
    root = models_root(settings)
    target = root / package.version
    if not target.exists():
        tmp = root / f".{package.version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(package.path, tmp)
        tmp.rename(target)
    if make_current:
        pointer = root / "CURRENT.tmp"
        pointer.write_text(package.version + "\n")
        pointer.replace(root / "CURRENT")
    return target


def deploy_locally(settings: Settings, version) -> None:
    """The local promotion: the registered version's package becomes CURRENT for the endpoint."""
    import tempfile
    from pathlib import Path

    from parking_core.forecasting.package import download_package
    from parking_core.objectstore import ObjectStore

    objects = ObjectStore(settings.objects_url)
    with tempfile.TemporaryDirectory() as tmp:
        install_package(settings, download_package(objects, objects.key_of(version.model_uri), Path(tmp) / "package"))


def current_package(settings: Settings) -> ModelPackage:
    pointer = models_root(settings) / "CURRENT"
    if not pointer.exists():
        raise FileNotFoundError("no model yet: run `parkcast train` (or pass --model DIR)")
    return ModelPackage.load(models_root(settings) / pointer.read_text().strip())


def common_grid(store: ReadingStore) -> tuple[str, int]:
    """The timezone and grid step every lot shares (one model serves one grid)."""
    lots = store.list_lots()
    if not lots:
        raise ValueError("the store has no lots: import data first")
    grids = {(lot.timezone, lot.grid_step_minutes) for lot in lots}
    if len(grids) > 1:
        raise ValueError(f"lots use different timezones/grid steps {sorted(grids)}; train one model per grid")
    ((timezone, step),) = grids
    return timezone, step


def store_training_frame(store: ReadingStore) -> tuple[pd.DataFrame, str, int]:
    """Every reading of every lot, with the lots' common timezone and grid step."""
    timezone, step = common_grid(store)
    lots = store.list_lots()
    start, end = datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC)
    frames = [readings_frame(store.query_readings(lot.lot_id, start, end)) for lot in lots]
    frame = pd.concat(frames, ignore_index=True)
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
    return frame, timezone, step
