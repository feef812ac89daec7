"""Synthetic depth traces that behave like real ones, for oracle and controller tests.

Each sample has a true logit `u` (its label is drawn from sigmoid(u)) and a `needed_depth`.
The prediction at depth t moves from an uninformed prior towards `u`, reaching it at the
needed depth; the early error is correlated across depths (a shrinking random walk), so
consecutive depths agree more as the sample converges. Some samples overthink: past their
needed depth they drift away from `u`. Hidden summaries hold the logit, the progress and
noise, like a real summary that carries (but is not only) the prediction.
"""

from __future__ import annotations

import numpy as np

from adaptive_loop.metrics import sigmoid
from adaptive_loop.trace import DepthTrace, TraceMeta


def make_trace(
    n: int = 4000,
    max_depth: int = 5,
    seed: int = 0,
    hidden_dim: int | None = 4,
    n_groups: int | None = None,
    flops: tuple[float, float, float] = (1000.0, 200.0, 50.0),
    overthink_fraction: float = 0.3,
    split: str = "test",
    flops_summary: float = 0.0,
) -> DepthTrace:
    """A realistic synthetic `DepthTrace` with a `needed_depth` feature."""
    rng = np.random.default_rng(seed)
    k = max_depth
    depth_probs = np.linspace(2.0, 1.0, k + 1)
    needed = rng.choice(k + 1, size=n, p=depth_probs / depth_probs.sum())
    u = rng.normal(-0.8, 1.6, n)
    labels = (rng.random(n) < sigmoid(u)).astype(np.float32)
    prior = rng.normal(-0.8, 0.3, n)
    t = np.arange(k + 1)[None, :]
    progress = np.minimum(1.0, (t + 1) / (needed[:, None] + 1.0))
    walk = np.cumsum(rng.normal(0.0, 0.12, (n, k + 1)), axis=1) + rng.normal(0.0, 0.2, (n, 1))
    overthink = rng.random(n) < overthink_fraction
    drift_dir = rng.normal(0.0, 0.4, n)
    drift = np.maximum(t - needed[:, None], 0) * (overthink * drift_dir)[:, None]
    logits = (
        prior[:, None]
        + progress * (u - prior)[:, None]
        + (1.0 - progress) * walk
        + drift
        + rng.normal(0.0, 0.03, (n, k + 1))
    )
    hidden = None
    if hidden_dim:
        hidden = rng.normal(0.0, 1.0, (n, k + 1, hidden_dim))
        hidden[:, :, 0] = logits
        if hidden_dim > 1:
            hidden[:, :, 1] = progress
    meta = TraceMeta(
        flops_entry=flops[0], flops_loop=flops[1], flops_exit=flops[2], max_depth=k, train_loops=3,
        hidden_dim=hidden_dim, flops_summary=flops_summary, dataset="synthetic", split=split,
    )
    return DepthTrace(
        ids=np.arange(n, dtype=np.int64),
        labels=labels,
        logits=logits.astype(np.float32),
        meta=meta,
        groups=None if n_groups is None else rng.integers(0, n_groups, n),
        hidden=None if hidden is None else hidden.astype(np.float32),
        features={"needed_depth": needed.astype(np.int64), "seq_len": rng.integers(1, 50, n)},
    )


def tiny_trace(logits: list[list[float]], labels: list[float], flops: tuple[float, float, float] = (100.0, 10.0, 1.0)) -> DepthTrace:
    """A hand-made trace from explicit logits [n][K+1] and labels."""
    z = np.asarray(logits, dtype=np.float32)
    meta = TraceMeta(flops_entry=flops[0], flops_loop=flops[1], flops_exit=flops[2], max_depth=z.shape[1] - 1, train_loops=1)
    return DepthTrace(ids=np.arange(z.shape[0]), labels=np.asarray(labels, dtype=np.float32), logits=z, meta=meta)
