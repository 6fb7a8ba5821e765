"""The model package: one folder holding everything needed to serve and audit a model.

    manifest.json       version, architecture, training window, data hash, code version, file hashes
    preprocessing.json  grid, window spec (column order, categorical codes, target scaling),
                        weekday profile, holidays, baseline intervals: what serving replays
    model.onnx          the network or the correction trees (onnxruntime; no torch at serving time)
    model.ckpt          the torch weights (pytorch-forecasting checkpoint), for audits and parity
                        (networks only)
    metrics.json        rolling-origin fold scores (correction model) or validation scores of
                        every candidate, baselines, and whether the model beats the weekly
                        level-adjusted baseline (the promotion floor)

Loading needs numpy and onnxruntime only.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from parking_core.forecasting.baselines import BASELINES, baseline_point_forecasts
from parking_core.forecasting.correction import Blend, flat_inputs, request_design
from parking_core.forecasting.features import Profile
from parking_core.forecasting.grid import Cube, GridSpec
from parking_core.forecasting.windows import ForecastRequest, InputSpec, WindowBuilder, decode_quantiles

PACKAGE_FORMAT = 1
REQUIRED_FILES = ("model.onnx", "preprocessing.json", "metrics.json")  # what load() and the forecaster read
MIN_HISTORY_DAYS = 7  # fewer observed days than this: a flagged baseline answers instead


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_hash(cube: Cube) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([cube.lots, [d.isoformat() for d in cube.days], list(cube.spec.open_slots)]).encode())
    digest.update(np.nan_to_num(cube.rate, nan=-1.0).astype(np.float32).tobytes())
    return digest.hexdigest()


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("parkcast")
    except PackageNotFoundError:
        base = "0+unknown"
    try:
        # bandit B603/B607: a fixed argv (git from PATH) that stamps the code version; no input in it.
        sha = subprocess.run(  # nosec B603 B607
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{base}+g{sha}" if sha else base


def baseline_intervals(rows) -> dict[str, dict[str, list[float]]]:
    """Empirical 10%/90% residual quantiles per horizon of each baseline (from a backtest frame)."""
    scored = rows[rows["actual"].notna()]
    out: dict[str, dict[str, list[float]]] = {}
    for name in BASELINES:
        resid = scored["actual"] - scored[name]
        grouped = resid.groupby(scored["horizon"])
        out[name] = {
            "q10": [float(v) for v in grouped.quantile(0.1).sort_index()],
            "q90": [float(v) for v in grouped.quantile(0.9).sort_index()],
        }
    return out


def json_object(path: Path) -> dict:
    """A package's JSON file, which must hold an object: anything else is a clear ValueError."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: holds a JSON {type(value).__name__}, not an object; the package is corrupt")
    return value


@dataclass
class ModelPackage:
    path: Path
    manifest: dict
    preprocessing: dict
    metrics: dict

    @classmethod
    def load(cls, path: Path | str, verify: bool = True) -> ModelPackage:
        """The package at `path`, its files checked against the manifest's SHA-256 sums."""
        path = Path(path)
        manifest = json_object(path / "manifest.json")
        if manifest.get("format") != PACKAGE_FORMAT:
            raise ValueError(f"{path}: unsupported package format {manifest.get('format')!r}")
        if verify:
            files = manifest.get("files")
            if not isinstance(files, dict):
                raise ValueError(f"{path}: the manifest lists no files; the package is incomplete")
            unlisted = sorted(set(REQUIRED_FILES) - set(files))
            if unlisted:  # every file loaded must be checked: a file outside the manifest is not
                raise ValueError(f"{path}: the manifest does not list {', '.join(unlisted)}; the package is incomplete")
            for name, digest in files.items():
                if Path(name).name != name:
                    raise ValueError(f"{path}: manifest file name {name!r} is not a plain file name")
                if not (path / name).is_file() or file_sha256(path / name) != digest:
                    raise ValueError(f"{path}/{name}: missing or checksum mismatch, the package is corrupt")
        return cls(path, manifest, json_object(path / "preprocessing.json"), json_object(path / "metrics.json"))

    @property
    def version(self) -> str:
        return self.manifest["model_version"]

    @property
    def grid(self) -> GridSpec:
        return GridSpec.from_dict(self.preprocessing["grid"])

    @property
    def timezone(self) -> str:
        return self.preprocessing["timezone"]

    @property
    def horizon(self) -> int:
        if "input_spec" in self.preprocessing:
            return int(self.preprocessing["input_spec"]["horizon"])
        return int(self.preprocessing["correction"]["horizon"])

    @property
    def below_floor(self) -> bool:
        """True when promotion will refuse the package: its rolling-origin evidence says it does
        not beat the weekly level-adjusted baseline, or it carries no such evidence."""
        rolling = self.metrics.get("rolling_origin")
        return rolling is None or not rolling.get("beats_weekly_level", False)

    def forecaster(self, threads: int = 1) -> OnnxForecaster:
        try:
            if self.manifest.get("architecture") == "gbm":
                return CorrectionForecaster(self, threads=threads)
            return OnnxForecaster(self, threads=threads)
        except Exception as exc:
            if type(exc).__module__.startswith("onnxruntime"):  # a graph onnxruntime cannot read
                raise ValueError(f"{self.path}/model.onnx cannot be loaded by onnxruntime ({exc})") from None
            raise


class OnnxForecaster:
    """Quantile forecasts from model.onnx; a lot with too little history gets a baseline,
    flagged in `sources`, never an error."""

    def __init__(self, package: ModelPackage, threads: int = 1):
        pre = package.preprocessing
        self.package = package
        self.profile = Profile.from_dict(pre["profile"])
        self.holidays = {date.fromisoformat(d) for d in pre["holidays"]}
        if "input_spec" in pre:
            self.spec = InputSpec.from_dict(pre["input_spec"])
            self.builder = WindowBuilder(self.spec, self.profile, self.holidays)
            self.horizon = self.spec.horizon
        self.fixed_batch: int | None = pre.get("onnx_fixed_batch")
        self.intervals = pre["baseline_intervals"]
        self.session = _session(package.path / "model.onnx", threads)
        self.sources: list[str] = []

    def raw(self, enc_cat, enc_cont, dec_cat, dec_cont) -> np.ndarray:
        inputs = [enc_cat, enc_cont, dec_cat, dec_cont]
        n = len(enc_cat)
        if self.fixed_batch is None:
            return self.session.run(None, dict(zip(_INPUTS, inputs, strict=True)))[0]
        out = []
        for start in range(0, n, self.fixed_batch):
            chunk = [a[start : start + self.fixed_batch] for a in inputs]
            pad = self.fixed_batch - len(chunk[0])
            if pad:
                chunk = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in chunk]
            out.append(self.session.run(None, dict(zip(_INPUTS, chunk, strict=True)))[0][: self.fixed_batch - pad])
        return np.concatenate(out)

    def model_quantiles(self, requests: Sequence[ForecastRequest]) -> np.ndarray:
        enc_cat, enc_cont, dec_cat, dec_cont = self.builder.batch(requests)
        return decode_quantiles(self.raw(enc_cat, enc_cont, dec_cat, dec_cont), enc_cont, dec_cont, self.spec)

    def enough_history(self, request: ForecastRequest) -> bool:
        observed_days = int((~np.isnan(request.history)).any(axis=1).sum())
        return observed_days >= MIN_HISTORY_DAYS and request.origin_pos + 1 >= self.spec.encoder_length

    def baseline(self, request: ForecastRequest) -> tuple[np.ndarray, str]:
        points = baseline_point_forecasts(request.history, request.origin_day, request.origin_slot, self.horizon)
        week_ago = request.origin_day - 7
        has_week_ago = week_ago >= 0 and not np.isnan(request.history[week_ago]).all()
        name = "weekly_level" if has_week_ago else "persistence"
        p50 = points[name]
        if np.isnan(p50).all():
            # Nothing observed at all: the weekday profile of all lots.
            prof = self.profile.overall
            slots = request.history.shape[1]
            p50 = np.empty(self.horizon, dtype=np.float32)
            for h in range(1, self.horizon + 1):
                d, s = divmod(request.origin_pos + h, slots)
                p50[h - 1] = prof[_weekday(request, d), s]
            name = "profile"
            q10 = np.full(self.horizon, -0.15)
            q90 = np.full(self.horizon, 0.15)
        else:
            q10 = np.asarray(self.intervals[name]["q10"][: self.horizon])
            q90 = np.asarray(self.intervals[name]["q90"][: self.horizon])
            q10 = np.pad(q10, (0, self.horizon - len(q10)), mode="edge")
            q90 = np.pad(q90, (0, self.horizon - len(q90)), mode="edge")
        quantiles = np.stack([p50 + q10, p50, p50 + q90], axis=-1)
        return np.clip(np.sort(quantiles, axis=-1), 0.0, 1.0), f"baseline:{name}"

    def predict(self, requests: Sequence[ForecastRequest]) -> np.ndarray:
        out = np.empty((len(requests), self.horizon, 3), dtype=np.float32)
        sources = ["model"] * len(requests)
        ready = [i for i, r in enumerate(requests) if self.enough_history(r)]
        if ready:
            out[ready] = self.model_quantiles([requests[i] for i in ready])
        for i in sorted(set(range(len(requests))) - set(ready)):
            out[i], sources[i] = self.baseline(requests[i])
        self.sources = sources
        return out


class CorrectionForecaster(OnnxForecaster):
    """The correction model (see correction.py): numpy inputs, the trees on onnxruntime, the
    blend and conformal band from preprocessing.json."""

    def __init__(self, package: ModelPackage, threads: int = 1):
        super().__init__(package, threads)
        correction = package.preprocessing["correction"]
        self.horizon = int(correction["horizon"])
        self.blend = Blend.from_dict(correction["blend"])

    def enough_history(self, request: ForecastRequest) -> bool:
        observed_days = int((~np.isnan(request.history)).any(axis=1).sum())
        return observed_days >= MIN_HISTORY_DAYS

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"inputs": inputs})[0][:, 0]

    def model_quantiles(self, requests: Sequence[ForecastRequest]) -> np.ndarray:
        d = request_design(requests, self.profile, self.holidays, self.horizon)
        correction = self.raw(flat_inputs(d)).reshape(d.anchor.shape)
        return self.blend.quantiles(d, correction)

    def predict(self, requests: Sequence[ForecastRequest]) -> np.ndarray:
        out = super().predict(requests)
        if not self.blend.weight.any():
            # The folds gave the trees no weight: what is served is the weekly level-adjusted
            # forecast, and the label says so.
            self.sources = ["baseline:weekly_level" if s == "model" else s for s in self.sources]
        return out


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _weekday(request: ForecastRequest, day_index: int) -> int:
    return (request.days[0].weekday() + day_index) % 7


_INPUTS = ["encoder_cat", "encoder_cont", "decoder_cat", "decoder_cont"]


def upload_package(objects, local_dir: Path, prefix: str) -> str:
    """Copy a package folder to the object store under `prefix`; returns its URI."""
    for path in sorted(Path(local_dir).iterdir()):
        objects.put_bytes(f"{prefix}/{path.name}", path.read_bytes())
    return objects.uri(prefix)


def download_package(objects, prefix: str, dest: Path) -> ModelPackage:
    """Fetch a package from the object store (checksums verified on load)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for key in objects.list(prefix):
        (dest / key.rsplit("/", 1)[-1]).write_bytes(objects.get_bytes(key))
    return ModelPackage.load(dest)
