"""Ranking and calibration metrics on numpy arrays: AUC, logloss, gAUC.

Written on numpy so that oracle and controller research never needs torch. AUC uses the
rank-sum (Mann-Whitney) form with tie averaging, which equals scikit-learn's
`roc_auc_score` and is fast enough for millions of rows.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _as_binary_labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return y


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = _as_binary_labels(labels)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    n_pos = float(np.sum(y > 0.5))
    n_neg = float(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((np.sum(ranks[y > 0.5]) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


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
    y = _as_binary_labels(labels)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: the impression-weighted mean of per-group AUCs over groups with both classes.

    This is the usual definition in CTR work (e.g. DIN): groups with a single class are
    skipped because their AUC is undefined. Returns NaN when no group qualifies.
    """
    y = _as_binary_labels(labels)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    g = np.asarray(groups).reshape(-1)
    if not (y.size == s.size == g.size):
        raise ValueError("labels, scores and groups must have the same length")
    order = np.argsort(g, kind="stable")
    g_sorted, y_sorted, s_sorted = g[order], y[order], s[order]
    boundaries = np.flatnonzero(g_sorted[1:] != g_sorted[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [g_sorted.size]])
    total, weight = 0.0, 0.0
    for start, end in zip(starts, ends):
        yy = y_sorted[start:end]
        pos = yy.sum()
        if pos == 0 or pos == yy.size:
            continue
        total += auc(yy, s_sorted[start:end]) * yy.size
        weight += yy.size
    return float(total / weight) if weight > 0 else float("nan")
