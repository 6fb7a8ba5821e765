"""Training with pytorch-forecasting (torch lives here and in export.py only).

All lots are trained jointly. Candidates: TemporalFusionTransformer and NHiTS, both with a
quantile loss (p10/p50/p90); the one with the lower intra-day MAE on the validation days
is kept. Seeded, early-stopped, with a progress bar.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from parking_core.forecasting.backtest import run_backtest
from parking_core.forecasting.features import (
    KNOWN_CATEGORICALS,
    KNOWN_REALS,
    ORIGIN_KNOWN_REALS,
    ORIGIN_STATIC_REALS,
    STATIC_CATEGORICALS,
    STATIC_REALS,
    TARGET,
    UNKNOWN_REALS,
    Profile,
    lot_features,
    origin_features,
    training_holidays,
)
from parking_core.forecasting.grid import Cube
from parking_core.forecasting.windows import QUANTILES, ForecastRequest, InputSpec, WindowBuilder

log = logging.getLogger("parkcast.training")


@dataclass
class TrainConfig:
    horizon: int = 8
    encoder_days: int = 1
    val_days: int = 7
    # "gbm": the correction model (correction.py), scored on rolling-origin folds; "tft" and
    # "nhits": pytorch-forecasting networks, validated on the last val_days (slower; they lost
    # to the weekly level-adjusted baseline out of sample, docs/forecasting.md).
    architectures: tuple[str, ...] = ("gbm",)
    hidden_size: int = 16
    attention_heads: int = 2
    dropout: float = 0.2
    learning_rate: float = 3e-3
    batch_size: int = 128
    max_epochs: int = 15
    patience: int = 4
    seed: int = 42
    threads: int = 2
    # "auto": the public holidays of the lots' timezone (England for Europe/London).
    holiday_country: str = "auto"
    holiday_subdiv: str | None = None
    limit_train_batches: int | float | None = None
    next_day_weight: float = 0.0
    refit: bool = True
    folds: int = 4  # rolling-origin folds of one week at the end of the data (the last one reported only)
    gbm_iterations: int = 300
    half_life_days: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_pipeline(cls, architectures: str = "gbm", refit: bool = False, val_days: int = 7,
                     **overrides) -> TrainConfig:
        """The daily pipeline's config (Dagster resource or SageMaker hyperparameters, which
        arrive as strings); None overrides keep the defaults."""
        cfg = cls(architectures=tuple(a.strip() for a in str(architectures).split(",") if a.strip()),
                  refit=str(refit).lower() in ("1", "true", "yes"), val_days=int(val_days))
        for name, value in overrides.items():
            if value is None or value == "" or (name == "limit_train_batches" and int(value) <= 0):
                continue
            if name not in ("max_epochs", "limit_train_batches", "hidden_size", "seed"):
                raise ValueError(f"unknown training setting {name!r}")
            setattr(cfg, name, int(value))
        return cfg


@dataclass
class Candidate:
    architecture: str
    model: object  # a fitted pytorch-forecasting model
    spec: InputSpec
    val_mae: float
    epochs: int
    seconds: float
    checkpoint: bytes = b""
    validation: object = None  # the TimeSeriesDataSet, for parity checks of the window builder
    refit: bool = False  # trained again on every day (validation block included)
    val_summary: dict | None = None  # the validation block's backtest summary (model and baselines)


def _frames(cube: Cube, profile: Profile, holidays: set[date], cfg: TrainConfig, val_start: int):
    """One group per (lot, origin): the training origins' windows end before the validation
    block; the validation origins' decoders start inside it."""
    slots = cube.spec.slots_per_day
    encoder_length = cfg.encoder_days * slots
    train_parts, val_parts = [], []
    for li, lot in enumerate(cube.lots):
        feats = lot_features(lot, float(cube.capacity[li]), cube.rate[li], cube.days, profile, holidays)
        n = len(feats["rate"])
        for origins, parts in (
            (np.arange(encoder_length - 1, val_start - cfg.horizon), train_parts),
            (np.arange(val_start - 1, n - cfg.horizon), val_parts),
        ):
            if not len(origins):
                continue
            rows = origin_features(feats, origins, encoder_length, cfg.horizon)
            part = pd.DataFrame({name: values.reshape(-1) for name, values in rows.items()})
            part["lot_id"] = lot
            part["instance"] = np.repeat([f"{lot}@{o}" for o in origins], rows["time_idx"].shape[1])
            # Loss only where the target was observed (not imputed); steps past the origin's day
            # (the next morning) count less: overnight changes are noisy and would drown the
            # intra-day signal the forecasts are mostly about.
            same_day = (rows["time_idx"] // slots) == (origins // slots)[:, None]
            step_weight = np.where(same_day, 1.0, cfg.next_day_weight)
            # Only learn from origins and targets whose inputs are real: an imputed "now" or
            # an imputed week-ago value makes the target noise.
            observed = feats["observed"]
            week_ago = rows["time_idx"] - 7 * slots
            clean = observed[origins][:, None] * np.where(week_ago >= 0, observed[np.maximum(week_ago, 0)], 0.0)
            part["weight"] = part["observed"] * (step_weight * clean).reshape(-1)
            parts.append(part)
    val = pd.concat(val_parts, ignore_index=True) if val_parts else None
    return pd.concat(train_parts, ignore_index=True), val


def _datasets(train_rows: pd.DataFrame, val_rows: pd.DataFrame | None, cfg: TrainConfig, slots: int, architecture: str):
    from pytorch_forecasting import TimeSeriesDataSet
    from pytorch_forecasting.data.encoders import NaNLabelEncoder, TorchNormalizer

    encoder_length = cfg.encoder_days * slots
    common = dict(
        time_idx="time_idx",
        target=TARGET,
        group_ids=["instance"],
        weight="weight",
        max_encoder_length=encoder_length,
        min_encoder_length=encoder_length,
        max_prediction_length=cfg.horizon,
        min_prediction_length=cfg.horizon,
        static_categoricals=STATIC_CATEGORICALS,
        static_reals=STATIC_REALS + ORIGIN_STATIC_REALS,
        time_varying_known_categoricals=KNOWN_CATEGORICALS,
        time_varying_known_reals=KNOWN_REALS + ORIGIN_KNOWN_REALS,
        time_varying_unknown_reals=UNKNOWN_REALS,
        # Features arrive scaled (rates, fractions, sin/cos): no extra scalers to replicate.
        scalers={
            name: None
            for name in KNOWN_REALS + ORIGIN_KNOWN_REALS + STATIC_REALS + ORIGIN_STATIC_REALS + UNKNOWN_REALS
            if name != TARGET
        },
        target_normalizer=TorchNormalizer(method="standard"),
        categorical_encoders={
            "lot_id": NaNLabelEncoder(add_nan=True),
            "dow": NaNLabelEncoder(add_nan=True),
            "holiday": NaNLabelEncoder(add_nan=True),
        },
        add_relative_time_idx=architecture == "tft",
        add_target_scales=False,
        add_encoder_length=False,
    )
    training = TimeSeriesDataSet(train_rows, **common)
    if val_rows is None:
        return training, None
    validation = TimeSeriesDataSet.from_dataset(training, val_rows, stop_randomization=True)
    return training, validation


def next_day_band(rows: pd.DataFrame, slots: int) -> tuple[float, float]:
    """10%/90% quantiles of the target on observed steps that lie on the day after their origin."""
    origin = rows["instance"].str.rsplit("@", n=1).str[1].astype(int)
    mask = (rows["time_idx"] // slots > origin // slots) & (rows["observed"] > 0)
    values = rows.loc[mask, TARGET]
    if values.empty:
        return (-0.1, 0.1)
    return (float(values.quantile(0.1)), float(values.quantile(0.9)))


def input_spec(dataset, horizon: int, band: tuple[float, float] = (-0.1, 0.1)) -> InputSpec:
    center, scale = (float(v) for v in dataset.target_normalizer.get_parameters().numpy())
    codes, unknown = {}, {}
    for name in dataset.flat_categoricals:
        encoder = dataset._categorical_encoders[name]  # the fitted ones (the public ones are the templates)
        codes[name] = {str(k): int(v) for k, v in encoder.classes_.items() if isinstance(k, str)}
        unknown[name] = 0  # NaNLabelEncoder(add_nan=True) keeps 0 for unseen values
    return InputSpec(
        reals=list(dataset.reals),
        categoricals=list(dataset.flat_categoricals),
        categorical_codes=codes,
        unknown_code=unknown,
        encoder_length=dataset.max_encoder_length,
        horizon=horizon,
        target=TARGET,
        target_center=center,
        target_scale=scale,
        next_day_band=band,
    )


def _build_model(architecture: str, training, cfg: TrainConfig):
    import torch
    from pytorch_forecasting import NHiTS, TemporalFusionTransformer
    from pytorch_forecasting.metrics import QuantileLoss

    loss = QuantileLoss(quantiles=list(QUANTILES))
    # Our own intra-day backtest scores the candidates; the library's extra logging metrics
    # also break on weighted targets in NHiTS.
    common = dict(
        dropout=cfg.dropout,
        learning_rate=cfg.learning_rate,
        loss=loss,
        logging_metrics=torch.nn.ModuleList([]),
        log_interval=-1,
        reduce_on_plateau_patience=2,
    )
    if architecture == "tft":
        return TemporalFusionTransformer.from_dataset(
            training,
            hidden_size=cfg.hidden_size,
            attention_head_size=cfg.attention_heads,
            hidden_continuous_size=max(4, cfg.hidden_size // 2),
            **common,
        )
    if architecture == "nhits":
        return NHiTS.from_dataset(training, hidden_size=cfg.hidden_size * 4, **common)
    raise ValueError(f"unknown architecture {architecture!r}")


def _fit(architecture: str, training, validation, cfg: TrainConfig, progress: bool, epochs: int | None = None):
    """Early-stopped on validation when given; else exactly `epochs` epochs. Returns the model,
    the epoch count of the kept weights and their checkpoint bytes."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_num_threads(cfg.threads)
    model = _build_model(architecture, training, cfg)
    train_dl = training.to_dataloader(train=True, batch_size=cfg.batch_size, num_workers=0)
    val_dl = None if validation is None else validation.to_dataloader(
        train=False, batch_size=cfg.batch_size * 4, num_workers=0
    )
    with tempfile.TemporaryDirectory() as tmp:
        callbacks: list = []
        checkpoint = None
        if val_dl is not None:
            checkpoint = ModelCheckpoint(dirpath=tmp, monitor="val_loss", mode="min", save_top_k=1)
            callbacks += [EarlyStopping(monitor="val_loss", patience=cfg.patience, mode="min"), checkpoint]
        if progress:
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        trainer = pl.Trainer(
            max_epochs=epochs or cfg.max_epochs,
            accelerator="cpu",
            devices=1,
            gradient_clip_val=0.1,
            callbacks=callbacks,
            enable_progress_bar=progress,
            enable_model_summary=False,
            enable_checkpointing=checkpoint is not None,
            logger=False,
            deterministic=True,
            limit_train_batches=cfg.limit_train_batches,
        )
        trainer.fit(model, train_dataloaders=train_dl, val_dataloaders=val_dl)
        path = Path(checkpoint.best_model_path) if checkpoint else Path(tmp) / "final.ckpt"
        if checkpoint is None:
            trainer.save_checkpoint(path)
        best = type(model).load_from_checkpoint(path)
        # bandit B614: the checkpoint was written by this process, into its own temporary folder, just above.
        kept_epochs = torch.load(path, map_location="cpu", weights_only=False)["epoch"]  # nosec B614 + (1 if checkpoint else 0)
        checkpoint_bytes = path.read_bytes()
    best.eval()
    return best, kept_epochs, checkpoint_bytes


class TorchForecaster:
    """The trained network behind the same window builder the ONNX forecaster uses."""

    def __init__(self, model, builder: WindowBuilder):
        self.model = model
        self.builder = builder
        self.horizon = builder.spec.horizon
        self.target_scale = (builder.spec.target_center, builder.spec.target_scale)

    def raw(self, enc_cat, enc_cont, dec_cat, dec_cont) -> np.ndarray:
        import torch

        from parking_core.forecasting.export import network_inputs

        with torch.no_grad():
            x = network_inputs(
                torch.as_tensor(enc_cat),
                torch.as_tensor(enc_cont),
                torch.as_tensor(dec_cat),
                torch.as_tensor(dec_cont),
                self.target_scale,
            )
            return self.model(x)["prediction"].numpy()

    def predict(self, requests: Sequence[ForecastRequest]) -> np.ndarray:
        from parking_core.forecasting.windows import decode_quantiles

        enc_cat, enc_cont, dec_cat, dec_cont = self.builder.batch(requests)
        return decode_quantiles(self.raw(enc_cat, enc_cont, dec_cat, dec_cont), enc_cont, dec_cont, self.builder.spec)


@dataclass
class TrainingResult:
    best: Candidate
    candidates: list[Candidate]
    profile: Profile
    holidays: set[date]
    config: TrainConfig
    train_days: tuple[date, date]
    val_start: date
    timezone: str

    def forecaster(self, candidate: Candidate | None = None) -> TorchForecaster:
        c = candidate or self.best
        return TorchForecaster(c.model, WindowBuilder(c.spec, self.profile, self.holidays))


def train(cube: Cube, cfg: TrainConfig | None = None, progress: bool = True) -> TrainingResult:
    """Fit every candidate on cube days before the validation block; keep the best on validation."""
    cfg = cfg or TrainConfig()
    slots = cube.spec.slots_per_day
    if cfg.horizon > slots:
        raise ValueError(f"horizon {cfg.horizon} is longer than a day of open slots ({slots})")
    val_start_day = len(cube.days) - cfg.val_days
    if val_start_day < cfg.encoder_days + 7:
        raise ValueError(f"need at least {cfg.encoder_days + 7 + cfg.val_days} days of history to train")
    holidays = training_holidays(cube.days, cfg.holiday_country, cfg.holiday_subdiv, cube.timezone)
    # The profile (imputation of last resort, and a feature) only sees the training days.
    profile = Profile.fit(cube.lots, cube.rate[:, :val_start_day], cube.days[:val_start_day])
    val_start = val_start_day * slots
    train_rows, val_rows = _frames(cube, profile, holidays, cfg, val_start)

    candidates = []
    for architecture in cfg.architectures:
        started = time.monotonic()
        training, validation = _datasets(train_rows, val_rows, cfg, slots, architecture)
        log.info("training %s on %d windows, validating on %d", architecture, len(training), len(validation))
        model, epochs, checkpoint_bytes = _fit(architecture, training, validation, cfg, progress)
        spec = input_spec(training, cfg.horizon, next_day_band(train_rows, slots))
        candidate = Candidate(architecture, model, spec, np.nan, epochs, 0.0, checkpoint_bytes, validation)
        builder = WindowBuilder(spec, profile, holidays)
        val = run_backtest(
            cube, cube.days[val_start_day], cfg.horizon, TorchForecaster(model, builder),
            progress=False,
        )
        candidate.val_summary = val.summary()
        candidate.val_mae = candidate.val_summary["mae"]["model"]
        candidate.seconds = time.monotonic() - started
        log.info("%s: validation intra-day MAE %.4f after %d epochs (%.0fs)", architecture, candidate.val_mae,
                 epochs, candidate.seconds)
        candidates.append(candidate)
    best = min(candidates, key=lambda c: c.val_mae)
    if cfg.refit:
        # Selection and epoch count came from validation; the model that ships learns from
        # every training day, the most recent week included.
        started = time.monotonic()
        n_days = len(cube.days)
        profile = Profile.fit(cube.lots, cube.rate, cube.days)
        all_rows, _ = _frames(cube, profile, holidays, cfg, n_days * slots)
        training, _ = _datasets(all_rows, None, cfg, slots, best.architecture)
        log.info("refitting %s on all %d windows for %d epochs", best.architecture, len(training), best.epochs)
        model, epochs, checkpoint_bytes = _fit(best.architecture, training, None, cfg, progress, epochs=best.epochs)
        spec = input_spec(training, cfg.horizon, next_day_band(all_rows, slots))
        best = Candidate(best.architecture, model, spec, best.val_mae, epochs,
                         time.monotonic() - started, checkpoint_bytes, None, refit=True, val_summary=best.val_summary)
    return TrainingResult(
        best=best,
        candidates=candidates,
        profile=profile,
        holidays=holidays,
        config=cfg,
        train_days=(cube.days[0], cube.days[-1]),
        val_start=cube.days[val_start_day],
        timezone=cube.timezone,
    )
