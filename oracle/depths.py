"""Per-sample best depth: the label-aware choice every controller is measured against.

The oracle depth of a sample is `argmin_t BCE(logit_t, y)`: for a click that is the depth
with the highest probability, for a non-click the lowest. It uses the label, so it is a
ceiling, not something a controller can reach. Ties go to the shallowest depth (a deeper
depth that is no better is wasted compute).

The cost-aware oracle minimises `BCE_t + cost_lambda * (cost_t - cost_0) / loop_flops`, where
`cost_t` is the CostModel cost of a fixed-depth prediction at depth t. Dividing by the FLOPs
of one Loop step makes `cost_lambda` read as "nats of loss a loop step must buy", which is
independent of the model size (with a FLOP-free loop the raw FLOPs are used).
"""

from __future__ import annotations

import numpy as np

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import bce_from_logits
from adaptive_loop.trace import DepthTrace


def per_sample_bce(trace: DepthTrace) -> np.ndarray:
    """Binary cross-entropy of every sample at every depth, float64 [n, K+1]."""
    return bce_from_logits(trace.labels[:, None], trace.logits)


def depth_costs(trace: DepthTrace) -> np.ndarray:
    """FLOPs/sample of a fixed-depth prediction at each depth 0..K, float64 [K+1]."""
    return np.asarray(CostModel.from_trace(trace).fixed_depth(np.arange(trace.n_depths)), dtype=np.float64)


def cost_units(trace: DepthTrace) -> np.ndarray:
    """Extra cost of each depth over depth 0 in Loop-step units: `(cost_t - cost_0) / loop`."""
    costs = depth_costs(trace)
    loop = CostModel.from_trace(trace).loop
    return (costs - costs[0]) / (loop if loop > 0 else 1.0)


def oracle_depths(trace: DepthTrace, cost_lambda: float = 0.0, bce: np.ndarray | None = None) -> np.ndarray:
    """Best depth per sample (int64 [n]), ties to the shallowest.

    Args:
        trace: the depth trace (labels are used).
        cost_lambda: nats of loss one Loop step of FLOPs must buy; 0 is the plain oracle.
        bce: precomputed `per_sample_bce(trace)`, to save recomputing it.
    """
    if not np.isfinite(cost_lambda) or cost_lambda < 0:
        raise ConfigError(f"cost_lambda must be a finite number >= 0, got {cost_lambda}")
    loss = per_sample_bce(trace) if bce is None else bce
    if cost_lambda > 0:
        loss = loss + cost_lambda * cost_units(trace)[None, :]
    return np.argmin(loss, axis=1).astype(np.int64)  # argmin returns the first (shallowest) minimum


def logits_at(trace: DepthTrace, depths: np.ndarray) -> np.ndarray:
    """The logit each sample has at its own depth, float64 [n]."""
    d = np.asarray(depths, dtype=np.int64)
    return trace.logits[np.arange(trace.n_samples), d].astype(np.float64)
