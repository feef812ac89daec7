"""Ranking and calibration metrics on numpy arrays: the library's one AUC, gAUC and logloss.

Written on numpy so that oracle and controller research never needs torch. Every AUC in
the library comes from this module: the trainer's validation monitor, per-depth tables,
the oracle, the controller harness (sweeps and bootstrap resamples) and the engine's
streaming metric, so they cannot disagree.

- `auc`: the tie-averaged Mann-Whitney AUC (equal to scikit-learn's `roc_auc_score`). It
  sorts the scores once and finds each positive's average rank with `searchsorted`
  instead of ranking every row, because controller sweeps and oracle curves call it
  hundreds of times on up to millions of rows.
- `gauc`: the impression-weighted mean of per-group AUCs over groups holding both classes
  (the usual CTR definition, e.g. DIN), in one `lexsort` and a few `bincount`s instead of a
  Python loop over groups.
- `auc_from_counts`: AUC from positive / negative counts per run of equal scores in
  ascending order (pairs inside a run count one half). Bootstrap resamples
  (`adaptive_loop.harness.bootstrap.SortedScores`) and the binned streaming AUC of the
  engine (`adaptive_loop.engine.dataset.StreamingAUC`) reduce to these counts.
"""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
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


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: the impression-weighted mean of per-group AUCs over groups with both classes.

    Groups with a single class are skipped because their AUC is undefined. Returns NaN
    when no group qualifies.
    """
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


def auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC from positive and negative counts per score run, runs in ascending score order.

    Counts run along the last axis (`[..., runs]`); pairs within one run count one half.
    Returns float64 with the leading shape (a 0-d array for 1-d counts); NaN where a class
    has no rows.
    """
    pos = np.asarray(pos, dtype=np.float64)  # products of counts outgrow float32's exact integers
    neg = np.asarray(neg, dtype=np.float64)
    neg_below = np.cumsum(neg, axis=-1) - neg
    num = np.sum(pos * (neg_below + 0.5 * neg), axis=-1)
    den = pos.sum(axis=-1) * neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + exp(z)), computed without overflow for large |z| (float64)."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def bce_from_logits(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per-element binary cross-entropy computed from logits (stable, no clipping needed).

    `labels` broadcasts against `logits`, so `bce_from_logits(y[:, None], logits[n, K+1])`
    gives the per-sample loss at every depth.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))


def logloss_from_logits(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of logits against 0/1 labels."""
    return float(np.mean(bce_from_logits(labels, logits)))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 labels."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
