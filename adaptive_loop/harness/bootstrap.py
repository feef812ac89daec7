"""Paired bootstrap confidence intervals for AUC differences.

Both predictions are scored on the same resampled rows (paired), so the interval reflects
the noise of the difference, not of each AUC. Each score vector is sorted once
(`SortedScores`): a resample's AUC is then one `bincount` of the resampled rows' tie-run
keys and `adaptive_loop.metrics.auc_from_counts` over the runs, O(n) per resample, in
chunks to bound memory. Seeded: the same seed gives the same interval.

Resampling rows with replacement is the same as giving each row a multiplicity (its count
in the resample), and the AUC of a resample is the weighted AUC with those counts. The
scores never change between resamples, so their sort order and tie runs are computed once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from adaptive_loop.harness.curves import FixedFrontier, fixed_frontier, mixture_depths
from adaptive_loop.metrics import auc, auc_from_counts
from adaptive_loop.trace import DepthTrace
from controllers.base import ControllerDecision


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Group id (0..G-1) of each element of an ascending array; equal values share a group."""
    n = sorted_scores.size
    new = np.empty(n, dtype=bool)
    if n:
        new[0] = True
        np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new[1:])
    return np.cumsum(new) - 1


@dataclass(frozen=True)
class SortedScores:
    """One score vector prepared once for many weighted (bootstrap) AUCs.

    Each row gets a key `2 * tie_run + label`, where tie runs are the groups of equal
    scores in ascending order. A resample given as row indices becomes per-run positive and
    negative counts with one `bincount` of the keys, with no per-resample sort.
    """

    run_key: np.ndarray  # int64 [n]: 2 * (tie-run id in ascending score order) + label
    n_runs: int

    @classmethod
    def build(cls, labels: np.ndarray, scores: np.ndarray) -> "SortedScores":
        """Sort `scores` once and key every row by (tie run, label); raises `ValueError` if the lengths differ."""
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        y = np.asarray(labels).reshape(-1) > 0.5
        if y.shape != s.shape:
            raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
        order = np.argsort(s)
        run_sorted = _tie_groups(s[order])
        run = np.empty_like(run_sorted)
        run[order] = run_sorted
        return cls(run_key=2 * run + y, n_runs=int(run_sorted[-1]) + 1 if s.size else 0)

    def _auc_from_counts(self, counts: np.ndarray) -> np.ndarray:
        """AUC per row of per-key counts [r, 2 * n_runs]."""
        c = counts.reshape(counts.shape[0], self.n_runs, 2).astype(np.float64)
        return auc_from_counts(c[:, :, 1], c[:, :, 0])

    def auc_of_resamples(self, indices: np.ndarray) -> np.ndarray:
        """AUC of each resample given as row indices [r, m]."""
        r = indices.shape[0]
        width = 2 * self.n_runs
        keys = self.run_key[indices] + (np.arange(r) * width)[:, None]
        counts = np.bincount(keys.ravel(), minlength=r * width).reshape(r, width)
        return self._auc_from_counts(counts)

    def weighted_auc(self, weights: np.ndarray) -> np.ndarray:
        """AUC for each row of `weights` [r, n] (row multiplicities in the original order)."""
        w = np.asarray(weights, dtype=np.float64)
        width = 2 * self.n_runs
        out = np.empty(w.shape[0])
        for i, row in enumerate(w):
            out[i] = self._auc_from_counts(np.bincount(self.run_key, weights=row, minlength=width)[None, :])[0]
        return out


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile interval of AUC(a) - AUC(b) over paired resamples."""

    estimate: float
    low: float
    high: float
    level: float
    std: float
    prob_not_positive: float  # share of resamples with a difference <= 0
    n_resamples: int
    seed: int

    def contains(self, value: float) -> bool:
        """Whether `value` lies in [low, high]."""
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        """The interval as a JSON-ready dict."""
        return asdict(self)


def resample_indices(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    """Row indices [r, n] of r bootstrap resamples of n rows."""
    dtype = np.int32 if n < 2**31 else np.int64
    return rng.integers(0, n, size=(r, n), dtype=dtype)


def paired_bootstrap_auc_diff(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk_elements: int = 4_000_000,
) -> BootstrapCI:
    """Paired bootstrap CI for AUC(scores_a) - AUC(scores_b) on the same labels."""
    y = np.asarray(labels).reshape(-1)
    n = y.size
    if not (np.size(scores_a) == np.size(scores_b) == n):
        raise ValueError("labels and both score vectors must have the same length")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    a = SortedScores.build(y, scores_a)
    b = SortedScores.build(y, scores_b)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    step = max(1, min(n_resamples, chunk_elements // max(n, 1)))
    for start in range(0, n_resamples, step):
        r = min(step, n_resamples - start)
        idx = resample_indices(rng, n, r)
        diffs[start : start + r] = a.auc_of_resamples(idx) - b.auc_of_resamples(idx)
    diffs = diffs[np.isfinite(diffs)]
    tail = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(diffs, [tail, 1 - tail])) if diffs.size else (np.nan, np.nan)
    return BootstrapCI(
        estimate=auc(y, scores_a) - auc(y, scores_b),
        low=low,
        high=high,
        level=level,
        std=float(diffs.std(ddof=1)) if diffs.size > 1 else float("nan"),
        prob_not_positive=float(np.mean(diffs <= 0)) if diffs.size else float("nan"),
        n_resamples=n_resamples,
        seed=seed,
    )


def controller_vs_frontier_ci(
    decision: ControllerDecision,
    trace: DepthTrace,
    frontier: FixedFrontier | None = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """CI of AUC(controller) - AUC(random-mixture frontier at the controller's mean cost).

    The mixture uses `seed` too, so the whole comparison is reproducible.
    """
    fr = fixed_frontier(trace) if frontier is None else frontier
    mix = mixture_depths(fr, trace.n_samples, decision.mean_cost, seed)
    rows = np.arange(trace.n_samples)
    return paired_bootstrap_auc_diff(
        trace.labels, decision.logits(trace), trace.logits[rows, mix], n_resamples, level, seed
    )
