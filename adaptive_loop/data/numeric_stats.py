"""Standardisation statistics of numeric fields: from a whole column, or running over chunks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaptive_loop.data.schema import NumericField


@dataclass(frozen=True)
class NumericStats:
    """Training mean/std of one numeric field and whether a missing-value flag column exists."""

    mean: float
    std: float
    flag: bool


def numeric_stats(values: np.ndarray, f: NumericField) -> NumericStats:
    """Mean/std of the finite values of a whole column (NaN is missing; a constant column gets std 1)."""
    finite = values[~np.isnan(values)]
    mean = float(finite.mean()) if finite.size else 0.0
    std = float(finite.std()) if finite.size > 1 else 1.0
    if not np.isfinite(std) or std < 1e-12:
        std = 1.0
    return NumericStats(mean=mean, std=std, flag=bool(f.missing_flag and finite.size < values.size))


class RunningMoments:
    """Running count, mean and sum of squared deviations of the finite values of one column.

    Chan et al.'s parallel update, so a column streamed chunk by chunk gets the same mean and
    std as the whole column at once (up to rounding).
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.total = 0

    def add(self, values: np.ndarray) -> None:
        finite = values[~np.isnan(values)]
        self.total += values.size
        if finite.size == 0:
            return
        n_b = finite.size
        mean_b = float(finite.mean())
        m2_b = float(((finite - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    def stats(self, f: NumericField) -> NumericStats:
        mean = self.mean if self.n else 0.0
        std = float(np.sqrt(self.m2 / self.n)) if self.n > 1 else 1.0
        if not np.isfinite(std) or std < 1e-12:
            std = 1.0
        return NumericStats(mean=mean, std=std, flag=bool(f.missing_flag and self.n < self.total))
