"""Depth routing decisions from router scores, in numpy: batch top-k, per-sample thresholds.

A router (`adaptive_loop.training.routing`) scores every running row after each loop step
t = 0..L-1; a row that is not sent on exits at depth t, and rows still running after step L-1
exit at L. `scores` below are router logits [n, L] (column t: the score read after t steps).

Expert choice keeps, in each batch, the top `capacity[t]` share of the *batch* among the rows
still running: the decision of a row depends on the other rows of its batch.
`expert_choice_depths` replays that rule batch by batch (what training and the routed
validation AUC see). At inference a row must be decided alone: `capacity_thresholds`
calibrates one threshold per step on a (validation) set so that the same shares continue
there, and `threshold_depths` applies per-row thresholds (token choice uses 0, i.e.
probability 0.5). `agreement` measures how often two routings give a row the same depth.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _check(scores: np.ndarray, n_steps: int, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != n_steps:
        raise ValueError(f"{what}: router scores must have shape [n, {n_steps}], got {s.shape}")
    return s


def kept_count(capacity: float, batch_rows: int, running: int) -> int:
    """Rows of a `batch_rows`-row batch that run the next step: round(capacity * batch_rows), at most `running`."""
    return int(min(running, int(round(float(capacity) * batch_rows))))


def expert_choice_depths(scores: np.ndarray, capacity: Sequence[float], batch_size: int) -> np.ndarray:
    """Exit depth per row (int64 [n]) under batch top-k routing, batches of `batch_size` consecutive rows.

    At step t the `kept_count(capacity[t], m, running)` highest-scored running rows of an m-row
    batch continue (ties broken by row order); the rest exit at depth t.
    """
    cap = [float(c) for c in capacity]
    s = _check(scores, len(cap), "expert_choice_depths")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n, steps = s.shape
    depth = np.full(n, steps, dtype=np.int64)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(n, start + batch_size))
        m = rows.size
        for t in range(steps):
            k = kept_count(cap[t], m, rows.size)
            order = np.argsort(-s[rows, t], kind="stable")
            depth[rows[order[k:]]] = t
            rows = rows[np.sort(order[:k])]
    return depth


def capacity_thresholds(scores: np.ndarray, capacity: Sequence[float]) -> np.ndarray:
    """Per-step thresholds [L] under which, on these rows as one batch, the shares `capacity` continue.

    Sequential: theta_t is the k-th highest score among the rows still running after the
    earlier thresholds (k = `kept_count`); +inf keeps none, -inf keeps all running rows.
    """
    cap = [float(c) for c in capacity]
    s = _check(scores, len(cap), "capacity_thresholds")
    n = s.shape[0]
    theta = np.empty(len(cap), dtype=np.float64)
    running = np.ones(n, dtype=bool)
    for t, c in enumerate(cap):
        values = np.sort(s[running, t])[::-1]
        k = kept_count(c, n, values.size)
        if k == 0:
            theta[t] = np.inf
        elif k >= values.size:
            theta[t] = -np.inf
        else:
            theta[t] = values[k - 1]
        running &= s[:, t] >= theta[t]
    return theta


def threshold_depths(scores: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """Exit depth per row (int64 [n]): the first step t whose score is below `thresholds[t]`, else L."""
    theta = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    s = _check(scores, theta.size, "threshold_depths")
    stop = np.concatenate([s < theta[None, :], np.ones((s.shape[0], 1), dtype=bool)], axis=1)
    return np.argmax(stop, axis=1).astype(np.int64)


def agreement(a: np.ndarray, b: np.ndarray, n_depths: int) -> dict[str, object]:
    """How far two routings agree: share of rows with the same depth, and the depth histograms of both."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"routings of different lengths: {a.shape} vs {b.shape}")
    return {
        "same_depth": float(np.mean(a == b)) if a.size else float("nan"),
        "mean_abs_depth_diff": float(np.mean(np.abs(a - b))) if a.size else float("nan"),
        "share_a": (np.bincount(a, minlength=n_depths) / max(a.size, 1)).tolist(),
        "share_b": (np.bincount(b, minlength=n_depths) / max(b.size, 1)).tolist(),
    }
