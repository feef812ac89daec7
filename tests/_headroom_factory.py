"""Constructed traces where the share of the oracle headroom that is depth is known.

Every sample has a true logit u (its label is drawn from sigmoid(u)) and a model estimate
u_hat = u + err. The depth columns are then built so that the answer is known:

- `exchangeable`: every depth is u_hat plus independent noise (optionally with a
  per-sample scale): depths that differ only by noise, so the excess must be about zero;
  "other seeds" are drawn from the same noise process.
- `planted`: for an identifiable half of the samples (side column `group` = 1) the deeper
  depths correct part of the model error (they move towards u), for the other half the
  shallower ones do. Some depths are genuinely better for identifiable samples; "seeds"
  differ only by a small noise around one depth.
- `information_monotone`: the true logit is a sum of independent terms and depth d reads the
  first d + 1 of them (the synthetic generator's referral path): every extra depth only adds
  information, no sample is better off shallower, and the shallower depths' deviations point
  away from the label (they are shrunk towards the prior), so the oracle gains less among them
  than among noise of the same size: the excess is below zero.
- `hidden_stop`: the synthetic generator's `hidden_stop` rows with an ideal learner: depth i
  predicts the logit from what i loop steps can read in the row's visible regime (least
  squares, per regime and depth), so rows whose hidden stop makes deeper terms noise are hurt
  by depth only as much as the weight those terms earn on the other rows of their regime.
- `hidden_block`: one block of depths is u_hat and the other is u_hat plus large noise,
  which block is which is random per sample and visible in no input: headroom the label
  finds and no controller can predict.
"""

from __future__ import annotations

import numpy as np

from adaptive_loop.metrics import sigmoid
from adaptive_loop.trace import DepthTrace, TraceMeta

FLOPS = (1000.0, 200.0, 50.0)


def _trace(logits: np.ndarray, labels: np.ndarray, features: dict[str, np.ndarray] | None = None,
           split: str = "test") -> DepthTrace:
    meta = TraceMeta(flops_entry=FLOPS[0], flops_loop=FLOPS[1], flops_exit=FLOPS[2], max_depth=logits.shape[1] - 1,
                     train_loops=3, dataset="constructed", split=split)
    return DepthTrace(ids=np.arange(labels.size), labels=labels, logits=logits.astype(np.float32), meta=meta,
                      features=features or {})


def _truth(n: int, rng: np.random.Generator, err_sd: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = rng.normal(-0.8, 1.6, n)
    labels = (rng.random(n) < sigmoid(u)).astype(np.float32)
    err = rng.normal(0.0, err_sd, n)
    return u, labels, err


def exchangeable(n: int = 4000, n_depths: int = 6, noise: float = 0.3, seed: int = 0, heteroscedastic: bool = False,
                 n_seeds: int | None = None) -> tuple[DepthTrace, list[DepthTrace]]:
    """(trace whose depths are noisy copies of one prediction, traces of "other seeds" from the same noise)."""
    rng = np.random.default_rng(seed)
    u, labels, err = _truth(n, rng, 0.7)
    scale = noise * (np.exp(rng.normal(0.0, 0.7, n)) if heteroscedastic else np.ones(n))

    def copies() -> np.ndarray:
        return (u + err)[:, None] + scale[:, None] * rng.normal(0.0, 1.0, (n, n_depths))

    trace = _trace(copies(), labels)
    return trace, [_trace(copies(), labels) for _ in range(n_seeds or n_depths)]


def planted(n: int = 4000, n_depths: int = 6, effect: float = 0.6, seed: int = 0, jitter: float = 0.05,
            seed_noise: float = 0.05, n_seeds: int | None = None) -> tuple[DepthTrace, list[DepthTrace]]:
    """(trace with genuine, identifiable per-sample depth effects, traces of seeds differing by `seed_noise`)."""
    rng = np.random.default_rng(seed)
    u, labels, err = _truth(n, rng, 0.9)
    group = rng.random(n) < 0.5
    t = np.arange(n_depths)[None, :] / (n_depths - 1)
    corrected = np.where(group[:, None], t, 1.0 - t) * effect  # share of the error each depth removes
    z = (u + err)[:, None] - corrected * err[:, None] + rng.normal(0.0, jitter, (n, n_depths))
    trace = _trace(z, labels, {"group": group.astype(np.int64)})
    seeds = [_trace(z + rng.normal(0.0, seed_noise, z.shape), labels) for _ in range(n_seeds or n_depths)]
    return trace, seeds


def information_monotone(n: int = 3000, n_depths: int = 6, n_terms: int = 4, strength: float = 1.2,
                         seed: int = 0) -> DepthTrace:
    """Trace whose depth d predicts with the first d + 1 of `n_terms` independent terms of the true logit."""
    rng = np.random.default_rng(seed)
    terms = rng.normal(0.0, strength, (n, n_terms))
    labels = (rng.random(n) < sigmoid(terms.sum(axis=1))).astype(np.float32)
    read = np.minimum(np.arange(n_depths), n_terms - 1) + 1
    z = np.stack([terms[:, :k].sum(axis=1) for k in read], axis=1) + rng.normal(0.0, 0.05, (n, n_depths))
    return _trace(z, labels)


def hidden_stop(share: float, n: int = 6000, strength: float = 4.0, seed: int = 0) -> tuple[DepthTrace, np.ndarray]:
    """(trace over depths 0..5 of an ideal learner on rows with hidden stops, which rows are stopped)."""
    rng = np.random.default_rng(seed)
    regime = rng.integers(0, 4, n)
    stopped = (regime > 0) & (rng.random(n) < share)
    terms = rng.choice([-1.0, 1.0], (n, 4))
    first_order = rng.normal(0.0, 1.0, n)
    on_path = np.arange(4)[None, :] <= regime[:, None]
    path = (terms * on_path).sum(axis=1) / np.sqrt(regime + 1.0)
    logit = strength * np.where(stopped, terms[:, 0], path) + 0.5 * first_order
    labels = (rng.random(n) < sigmoid(logit)).astype(np.float32)
    z = np.empty((n, 6))
    for depth in range(6):
        for d in range(4):
            rows = regime == d
            seen = terms[rows, : min(depth, d) + 1]
            x = np.column_stack([seen, first_order[rows], np.ones(rows.sum())])
            coef, *_ = np.linalg.lstsq(x, logit[rows], rcond=None)
            z[rows, depth] = x @ coef
    return _trace(z + rng.normal(0.0, 0.05, z.shape), labels), stopped


def hidden_block(n: int = 3000, n_depths: int = 4, noise: float = 1.5, seed: int = 0,
                 visible: bool = False) -> tuple[DepthTrace, float]:
    """(trace, AUC gain of always picking the accurate block): the block is marked by `group` only if `visible`."""
    from adaptive_loop.metrics import auc as fast_auc

    rng = np.random.default_rng(seed)
    u, labels, err = _truth(n, rng, 0.3)
    u_hat = u + err
    noisy = u_hat + rng.normal(0.0, noise, n)
    deep_is_accurate = rng.random(n) < 0.5
    deep = np.arange(n_depths)[None, :] >= n_depths // 2
    accurate_here = np.where(deep_is_accurate[:, None], deep, ~deep)
    z = np.where(accurate_here, u_hat[:, None], noisy[:, None])
    features = {"unrelated": rng.integers(0, 5, n).astype(np.int64)}
    if visible:
        features["group"] = deep_is_accurate.astype(np.int64)
    ideal = fast_auc(labels, u_hat) - max(fast_auc(labels, z[:, j]) for j in range(n_depths))
    return _trace(z, labels, features), ideal
