"""Walk-forward backtest: fit once, then for every test day and every origin slot from the
first of the day to the one before the last, forecast each later slot of that day up to
the horizon from observations at or before the origin only (the history handed to the
forecaster is cut at the origin by `truncate_at_origin`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from parking_core.forecasting.baselines import BASELINES, baseline_point_forecasts
from parking_core.forecasting.grid import Cube
from parking_core.forecasting.invocation import HISTORY_DAYS
from parking_core.forecasting.windows import ForecastRequest, request_at, slot_datetime


class QuantileForecaster(Protocol):
    horizon: int

    def predict(self, requests: Sequence[ForecastRequest]) -> np.ndarray:
        """[N, horizon, 3] rates (p10, p50, p90)."""
        ...


@dataclass
class BacktestResult:
    rows: pd.DataFrame  # one row per (lot, origin, target)

    def predictions_csv(self) -> pd.DataFrame:
        cols = ["lot_id", "origin", "target", "horizon", "p10", "p50", "p90"]
        out = self.rows[cols].copy()
        for c in ("origin", "target"):
            out[c] = out[c].dt.strftime("%Y-%m-%d %H:%M:%S")
        return out

    def scored(self) -> pd.DataFrame:
        return self.rows[self.rows["actual"].notna()]

    def mae_by_horizon(self) -> pd.DataFrame:
        scored = self.scored()
        table = {}
        for name in ("model", *BASELINES):
            column = "p50" if name == "model" else name
            table[name] = (scored[column] - scored["actual"]).abs().groupby(scored["horizon"]).mean()
        frame = pd.DataFrame(table)
        frame.loc["all"] = [(scored["p50" if n == "model" else n] - scored["actual"]).abs().mean() for n in frame]
        frame["n"] = list(scored.groupby("horizon").size()) + [len(scored)]
        return frame

    def coverage(self) -> float:
        s = self.scored()
        return float(((s["actual"] >= s["p10"]) & (s["actual"] <= s["p90"])).mean())

    def summary(self) -> dict:
        table = self.mae_by_horizon()
        best = min(BASELINES, key=lambda n: table.loc["all", n])
        model, base = table.loc["all", "model"], table.loc["all", best]
        return {
            "mae": {name: float(table.loc["all", name]) for name in ("model", *BASELINES)},
            "mae_by_horizon": {
                name: {int(h): float(v) for h, v in table[name].drop("all").items()} for name in ("model", *BASELINES)
            },
            "best_baseline": best,
            "improvement_vs_best_baseline": float(1 - model / base) if base else 0.0,
            "coverage_p10_p90": self.coverage(),
            "scored_points": int(table.loc["all", "n"]),
        }


def run_backtest(
    cube: Cube,
    test_start: date,
    horizon: int,
    forecaster: QuantileForecaster | None,
    test_end: date | None = None,
    progress: bool | None = None,
    batch_size: int = 2048,
) -> BacktestResult:
    slots = cube.spec.slots_per_day
    first = cube.day_index(test_start)
    last = cube.day_index(test_end) if test_end else len(cube.days) - 1
    requests: list[ForecastRequest] = []
    meta: list[tuple] = []
    for li, lot in enumerate(cube.lots):
        history = cube.rate[li]
        for d in range(max(first, 0), last + 1):
            if np.isnan(history[d]).all():
                continue  # the lot reported nothing that day: no origins to forecast from
            # What serving hands the model: the last HISTORY_DAYS days and the origin's.
            start = max(0, d - HISTORY_DAYS)
            for s in range(slots - 1):
                req = request_at(lot, float(cube.capacity[li]), cube.days[start:], history[start:], d - start, s,
                                 horizon)
                requests.append(req)
                meta.append((li, d, s))

    preds = np.full((len(requests), horizon, 3), np.nan, dtype=np.float32)
    bar = tqdm(total=len(requests), desc="backtest", unit="origins", disable=None if progress is None else not progress)
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        if forecaster is not None:
            preds[start : start + len(chunk)] = forecaster.predict(chunk)
        bar.update(len(chunk))
    bar.close()

    records = []
    for (li, d, s), req, pred in zip(meta, requests, preds, strict=True):
        base = baseline_point_forecasts(req.history, req.origin_day, s, horizon)
        day = cube.days[d]
        origin = slot_datetime(day, cube.spec.open_slots[s])
        for h in range(1, min(horizon, slots - 1 - s) + 1):
            target_slot = s + h
            records.append(
                (
                    cube.lots[li],
                    origin,
                    slot_datetime(day, cube.spec.open_slots[target_slot]),
                    h,
                    *(pred[h - 1] if forecaster is not None else (np.nan,) * 3),
                    cube.rate[li, d, target_slot],
                    *(base[name][h - 1] for name in BASELINES),
                )
            )
    rows = pd.DataFrame(
        records,
        columns=["lot_id", "origin", "target", "horizon", "p10", "p50", "p90", "actual", *BASELINES],
    )
    return BacktestResult(rows)
