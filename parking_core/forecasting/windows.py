"""Encoder/decoder windows for the network, torch-free (serving runs on onnxruntime).

`InputSpec` is read from the trained TimeSeriesDataSet (column order, categorical encoders,
lengths) and saved inside the model package; a test checks that these windows equal the
tensors pytorch-forecasting builds for the same sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from parking_core.forecasting.features import UNKNOWN_REALS, Profile, lot_features, origin_features
from parking_core.forecasting.grid import GridSpec

QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class InputSpec:
    reals: list[str]
    categoricals: list[str]
    # value -> code for each categorical; values a lot never showed in training map to `unknown`.
    categorical_codes: dict[str, dict[str, int]]
    unknown_code: dict[str, int]
    encoder_length: int
    horizon: int
    target: str = "resid"
    # The target enters the encoder standardised, as TimeSeriesDataSet's normalizer stored it.
    target_center: float = 0.0
    target_scale: float = 1.0
    # The network is trained on same-day steps only (see TrainConfig.next_day_weight). Steps
    # that reach into the next open day get the anchor with this empirical 10%/90% band.
    next_day_band: tuple[float, float] = (-0.1, 0.1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(**d)


@dataclass
class ForecastRequest:
    """History of one lot up to an origin: [day, slot] rates with NaN for missing/after origin."""

    lot_id: str
    capacity: float
    days: list[date]
    history: np.ndarray
    origin_day: int  # index into days
    origin_slot: int  # index into the open slots

    @property
    def origin_pos(self) -> int:
        return self.origin_day * self.history.shape[1] + self.origin_slot


def truncate_at_origin(history: np.ndarray, origin_day: int, origin_slot: int, horizon: int) -> np.ndarray:
    """Keep days up to the origin's, blank every slot after the origin, and add the blank days
    the decoder reaches into. What the model may see is exactly this array."""
    slots = history.shape[1]
    spill = (origin_slot + horizon) // slots
    out = np.full((origin_day + 1 + spill, slots), np.nan, dtype=np.float32)
    out[: origin_day + 1] = history[: origin_day + 1]
    out[origin_day, origin_slot + 1 :] = np.nan
    return out


def request_at(
    lot_id: str, capacity: float, days: list[date], history: np.ndarray, day: int, slot: int, horizon: int
) -> ForecastRequest:
    truncated = truncate_at_origin(history, day, slot, horizon)
    n = truncated.shape[0]
    all_days = [days[0] + timedelta(days=i) for i in range(n)]
    return ForecastRequest(lot_id, capacity, all_days, truncated, day, slot)


@dataclass
class WindowBuilder:
    spec: InputSpec
    profile: Profile
    holidays: set[date] = field(default_factory=set)

    def features(self, request: ForecastRequest) -> dict[str, np.ndarray]:
        return lot_features(
            request.lot_id, request.capacity, request.history, request.days, self.profile, self.holidays
        )

    def window(
        self, feats: dict[str, np.ndarray], origin_pos: int, statics: dict[str, str]
    ) -> tuple[np.ndarray, ...]:
        e, h = self.spec.encoder_length, self.spec.horizon
        if origin_pos + 1 < e:
            raise ValueError(f"need {e} positions of history before the origin, have {origin_pos + 1}")
        rows = {k: v[0] for k, v in origin_features(feats, np.array([origin_pos]), e, h).items()}
        cont = np.zeros((e + h, len(self.spec.reals)), dtype=np.float32)
        for j, name in enumerate(self.spec.reals):
            if name == "relative_time_idx":
                cont[:, j] = np.arange(-e, h, dtype=np.float32) / e
                continue
            cont[:, j] = rows[name]
            if name == self.spec.target:
                cont[:, j] = (cont[:, j] - self.spec.target_center) / self.spec.target_scale
            if name in UNKNOWN_REALS:
                cont[e:, j] = 0.0  # the future of unknown inputs is never shown
        cat = np.zeros((e + h, len(self.spec.categoricals)), dtype=np.int64)
        for j, name in enumerate(self.spec.categoricals):
            values = np.full(e + h, statics[name], dtype=object) if name in statics else rows[name]
            codes = self.spec.categorical_codes[name]
            unknown = self.spec.unknown_code[name]
            cat[:, j] = [codes.get(str(v), unknown) for v in values]
        return cat[:e], cont[:e], cat[e:], cont[e:]

    def batch(self, requests: Sequence[ForecastRequest]) -> tuple[np.ndarray, ...]:
        parts = []
        for req in requests:
            parts.append(self.window(self.features(req), req.origin_pos, {"lot_id": req.lot_id}))
        return tuple(np.stack([p[i] for p in parts]) for i in range(4))


def decode_quantiles(raw: np.ndarray, enc_cont: np.ndarray, dec_cont: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Network output (correction to the anchor forecast, [N, H, 3]) -> rates: add the anchor
    back, sort the quantiles and clip to [0, 1]. Next-day steps: anchor and its band."""
    anchor = dec_cont[..., spec.reals.index("anchor")]
    tod = spec.reals.index("tod")
    next_day = dec_cont[..., tod] <= enc_cont[:, -1:, tod]
    low, high = spec.next_day_band
    raw = np.where(next_day[..., None], np.array([low, 0.0, high], dtype=raw.dtype), raw)
    return np.clip(np.sort(raw + anchor[..., None], axis=-1), 0.0, 1.0)


def prob_free(quantiles: np.ndarray, capacity: float) -> np.ndarray:
    """P(at least one slot free) = P(rate <= (capacity - 1) / capacity), from p10/p50/p90 with a
    split normal: each side's spread from its own quantile (z(0.9) = 1.2816)."""
    from math import erf, sqrt

    threshold = (capacity - 1) / capacity
    p10, p50, p90 = quantiles[..., 0], quantiles[..., 1], quantiles[..., 2]
    sigma = np.where(threshold < p50, (p50 - p10), (p90 - p50)) / 1.2816
    sigma = np.maximum(sigma, 1e-4)
    z = (threshold - p50) / sigma
    cdf = 0.5 * (1 + np.vectorize(erf)(z / sqrt(2)))
    return np.clip(cdf, 0.0, 1.0)


def slot_datetime(day: date, minutes: int) -> datetime:
    return datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)


def target_positions(request: ForecastRequest, spec: GridSpec, horizon: int) -> list[tuple[date, int]]:
    """(local day, minutes) of each decoder step along the open slots."""
    out = []
    for h in range(1, horizon + 1):
        d, s = divmod(request.origin_pos + h, spec.slots_per_day)
        out.append((request.days[0] + timedelta(days=d), spec.open_slots[s]))
    return out
