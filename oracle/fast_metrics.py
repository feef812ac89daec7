"""Fast AUC, gAUC and bootstrap-weighted AUC for evaluating many depth allocations.

Oracle curves, controller sweeps and bootstrap intervals evaluate AUC hundreds of times on
up to millions of rows, so these versions sort once and count with `bincount` instead of
looping in Python. They equal `adaptive_loop.metrics.auc` / `gauc` (tie-averaged
Mann-Whitney form; impression-weighted gAUC over groups with both classes); the tests check
that.

The weighted form is the bootstrap trick: resampling rows with replacement is the same as
giving each row a multiplicity (its count in the resample), and the AUC of a resample is the
weighted AUC with those counts. The scores never change between resamples, so their sort
order (and tie groups) is computed once with `SortedScores` and each resample costs O(n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Group id (0..G-1) of each element of an ascending array; equal values share a group."""
    n = sorted_scores.size
    new = np.empty(n, dtype=bool)
    if n:
        new[0] = True
        np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new[1:])
    return np.cumsum(new) - 1


def fast_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC with tie averaging; NaN when only one class is present.

    Rank-sum form: the average 1-based rank of a positive's score among all scores is
    (left + right + 1) / 2 with left/right its `searchsorted` positions in the sorted
    scores. Sorting values (not indices) and querying sorted positives keeps it fast.
    """
    y = np.asarray(labels).reshape(-1) > 0.5
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    all_sorted = np.sort(s)
    pos_sorted = np.sort(s[y])
    left = np.searchsorted(all_sorted, pos_sorted, side="left").sum(dtype=np.float64)
    right = np.searchsorted(all_sorted, pos_sorted, side="right").sum(dtype=np.float64)
    rank_sum = 0.5 * (left + right + n_pos)
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (float(n_pos) * float(n_neg)))


def fast_gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Impression-weighted mean of per-group AUCs over groups holding both classes."""
    y = np.asarray(labels).reshape(-1) > 0.5
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    g = np.asarray(groups).reshape(-1)
    if not (y.size == s.size == g.size):
        raise ValueError("labels, scores and groups must have the same length")
    if y.size == 0:
        return float("nan")
    order = np.lexsort((s, g))
    gs, ss, ys = g[order], s[order], y[order].astype(np.float64)
    group_new = np.empty(gs.size, dtype=bool)
    group_new[0] = True
    np.not_equal(gs[1:], gs[:-1], out=group_new[1:])
    group_id = np.cumsum(group_new) - 1
    tie_new = group_new.copy()
    tie_new[1:] |= ss[1:] != ss[:-1]
    tie_id = np.cumsum(tie_new) - 1
    tie_group = group_id[tie_new]  # group of each tie run
    pos = np.bincount(tie_id, weights=ys)
    neg = np.bincount(tie_id).astype(np.float64) - pos
    cum_neg = np.cumsum(neg) - neg  # negatives before this run, over all groups
    group_start_run = np.flatnonzero(np.r_[True, tie_group[1:] != tie_group[:-1]])
    first_run_of_group = group_start_run[tie_group]
    neg_below = cum_neg - cum_neg[first_run_of_group]
    num = np.bincount(tie_group, weights=pos * (neg_below + 0.5 * neg))
    g_pos = np.bincount(tie_group, weights=pos)
    g_neg = np.bincount(tie_group, weights=neg)
    valid = (g_pos > 0) & (g_neg > 0)
    if not valid.any():
        return float("nan")
    size = g_pos + g_neg
    g_auc = num[valid] / (g_pos[valid] * g_neg[valid])
    return float(np.sum(g_auc * size[valid]) / np.sum(size[valid]))


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
        neg, pos = c[:, :, 0], c[:, :, 1]
        neg_below = np.cumsum(neg, axis=1) - neg
        num = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
        den = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

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
