"""Temporal smoothing with hysteresis: a moving average of each slot's probability, and a state
that changes only when the average crosses `on` (free -> taken) or `off` (taken -> free). A car
half-hidden for one frame or a passing shadow does not make the count flicker."""

from __future__ import annotations

import numpy as np


class Smoother:
    def __init__(self, n_slots: int, alpha: float = 0.5, on: float = 0.6, off: float = 0.4):
        self.alpha, self.on, self.off = alpha, on, off
        self.average = np.full(n_slots, np.nan)
        self.state = np.zeros(n_slots, dtype=bool)

    def update(self, probabilities: np.ndarray) -> np.ndarray:
        p = np.asarray(probabilities, dtype=float)
        first = np.isnan(self.average)
        self.average = np.where(first, p, self.alpha * p + (1 - self.alpha) * self.average)
        self.state = np.where(first, p >= 0.5,
                              np.where(self.state, self.average > self.off, self.average >= self.on))
        return self.state.copy()
