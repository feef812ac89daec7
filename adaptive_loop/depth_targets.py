"""Label-aware per-sample quantities of a depth trace: loss at every depth, best depth, gains.

They use the labels, so they are ceilings and training targets, never deployable
decisions. The oracle (`oracle/`) reports ceilings from them; learned controllers
(`controllers/learned/`) are trained to predict them. Both import them from here, beside
the trace contract, so neither of the two packages imports the other.

- `per_sample_bce`: BCE of every sample at every depth, [n, K+1];
- `oracle_depths`: each sample's lowest-BCE depth, ties to the shallowest (optionally
  charging `cost_lambda` nats per Loop step of extra cost);
- `gain_targets` / `gains_from_bce`: loss improvements over depth 0 and over the previous
  depth (`GainTargets`);
- `rank_utility` / `rank_gains`: the AUC-aware alternative: each depth's contribution to
  correctly ordered pairs against a reference ranking.

The oracle depth of a sample is `argmin_t BCE(logit_t, y)`: for a click that is the depth
with the highest probability, for a non-click the lowest. The cost-aware oracle minimises
`BCE_t + cost_lambda * (cost_t - cost_0) / loop_flops`, where `cost_t` is the `CostModel`
cost of a fixed-depth prediction at depth t. Dividing by the FLOPs of one Loop step makes
`cost_lambda` read as "nats of loss a loop step must buy", which is independent of the model
size (with a FLOP-free loop the raw FLOPs are used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import bce_from_logits
from adaptive_loop.trace import DepthTrace


# --------------------------------------------------------------------------- loss and best depth
def per_sample_bce(trace: DepthTrace) -> np.ndarray:
    """Binary cross-entropy of every sample at every depth, float64 [n, K+1]."""
    return bce_from_logits(trace.labels[:, None], trace.logits)


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
        units = CostModel.from_trace(trace).depth_units(trace.max_depth)[1]
        loss = loss + cost_lambda * units[None, :]
    return np.argmin(loss, axis=1).astype(np.int64)  # argmin returns the first (shallowest) minimum


# --------------------------------------------------------------------------- loss gains
@dataclass(frozen=True)
class GainTargets:
    """Loss improvements per sample and depth (positive = the depth helps).

    - `over_depth0[:, t] = BCE_0 - BCE_t` (column 0 is 0): what t loops buy over not looping;
    - `over_previous[:, t] = BCE_{t-1} - BCE_t` (column 0 is 0): what the t-th loop step
      buys, the Ouro-style "improvement of the next step" target.
    """

    bce: np.ndarray
    over_depth0: np.ndarray
    over_previous: np.ndarray

    @property
    def n_depths(self) -> int:
        return int(self.bce.shape[1])

    def to_frame(self) -> pd.DataFrame:
        """Columns `gain0_{t}` (over depth 0) and `gain_prev_{t}` (over depth t-1), t = 0..K."""
        data = {f"gain0_{t}": self.over_depth0[:, t] for t in range(self.n_depths)}
        data.update({f"gain_prev_{t}": self.over_previous[:, t] for t in range(self.n_depths)})
        return pd.DataFrame(data)


def gains_from_bce(bce: np.ndarray) -> GainTargets:
    """Gain targets from a per-sample, per-depth loss matrix [n, K+1]."""
    loss = np.asarray(bce, dtype=np.float64)
    if loss.ndim != 2 or loss.shape[1] < 1:
        raise ValueError(f"loss matrix must be [n, K+1], got shape {loss.shape}")
    over0 = loss[:, :1] - loss
    prev = np.zeros_like(loss)
    prev[:, 1:] = loss[:, :-1] - loss[:, 1:]
    return GainTargets(bce=loss, over_depth0=over0, over_previous=prev)


def gain_targets(trace: DepthTrace) -> GainTargets:
    """Gain targets of a trace (uses the labels)."""
    return gains_from_bce(per_sample_bce(trace))


# --------------------------------------------------------------------------- AUC-aware gains
def _mid_rank(sorted_ref: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Number of reference values below each query, ties counting half.

    Queries are searched in sorted order (cache-friendly), then put back in place.
    """
    order = np.argsort(queries, axis=None)
    q = queries.reshape(-1)[order]
    mid = (np.searchsorted(sorted_ref, q, side="left") + np.searchsorted(sorted_ref, q, side="right")) / 2.0
    out = np.empty(queries.size)
    out[order] = mid
    return out.reshape(queries.shape)


def rank_utility(trace: DepthTrace, reference: np.ndarray) -> np.ndarray:
    """Negative per-sample AUC contribution of each depth's score against a reference ranking.

    For a positive: minus the fraction of reference negatives scored below it (ties count
    half); for a negative: minus the fraction of reference positives scored above it.
    Lower is better, like a loss; float64 [n, K+1].
    """
    y = trace.labels > 0.5
    z = trace.logits.astype(np.float64)
    neg_ref = np.sort(reference[~y])
    pos_ref = np.sort(reference[y])
    util = np.zeros_like(z)
    if neg_ref.size and pos_ref.size:
        util[y] = -_mid_rank(neg_ref, z[y]) / neg_ref.size
        util[~y] = -(pos_ref.size - _mid_rank(pos_ref, z[~y])) / pos_ref.size
    return util


def rank_gains(trace: DepthTrace, reference: np.ndarray | None = None) -> np.ndarray:
    """AUC-contribution gain of each depth over depth 0, float64 [n, K+1] (column 0 is 0).

    A positive's contribution is the share of reference negatives scored below it, a
    negative's the share of reference positives scored above it (ties count half), against
    the `reference` logits (default: depth 0). Positives are weighted by 1 / (2 pi) and
    negatives by 1 / (2 (1 - pi)) (pi = positive rate), so that summing the gains of moved
    samples approximates n times the change of AUC while the reference ranking holds.
    """
    ref = trace.logits[:, 0] if reference is None else np.asarray(reference)
    util = rank_utility(trace, ref.astype(np.float64))  # lower is better
    gains = util[:, :1] - util
    y = trace.labels > 0.5
    pi = float(y.mean()) if y.size else 0.5
    if 0.0 < pi < 1.0:
        gains = gains * np.where(y, 0.5 / pi, 0.5 / (1.0 - pi))[:, None]
    return gains
