"""Per-sample gain targets for learned controllers.

A learned halting head or depth predictor needs to know, per sample, how much each depth
improves the loss. Two views, both `[n, K+1]` float64 with positive = better:

- `over_depth0[:, t] = BCE_0 - BCE_t` (column 0 is 0): what t loops buy over not looping;
- `over_previous[:, t] = BCE_{t-1} - BCE_t` (column 0 is 0): what the t-th loop step buys,
  the Ouro-style "improvement of the next step" target.

`rank_gains` is an AUC-aware alternative: how much each depth's score raises the sample's
share of correctly ordered pairs against a fixed reference ranking (see `rank_gains`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from adaptive_loop.trace import DepthTrace
from oracle.depths import per_sample_bce


@dataclass(frozen=True)
class GainTargets:
    """Loss improvements per sample and depth (positive = the depth helps)."""

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


def rank_gains(trace: DepthTrace, reference: np.ndarray | None = None) -> np.ndarray:
    """AUC-contribution gain of each depth over depth 0, float64 [n, K+1] (column 0 is 0).

    A positive's contribution is the share of reference negatives scored below it, a
    negative's the share of reference positives scored above it (ties count half), against
    the `reference` logits (default: depth 0). Positives are weighted by 1 / (2 pi) and
    negatives by 1 / (2 (1 - pi)) (pi = positive rate), so that summing the gains of moved
    samples approximates n times the change of AUC while the reference ranking holds.
    """
    from oracle.budgeted import _rank_utility  # the budgeted oracle's per-sample AUC utility

    ref = trace.logits[:, 0] if reference is None else np.asarray(reference)
    util = _rank_utility(trace, ref.astype(np.float64))  # lower is better
    gains = util[:, :1] - util
    y = trace.labels > 0.5
    pi = float(y.mean()) if y.size else 0.5
    if 0.0 < pi < 1.0:
        gains = gains * np.where(y, 0.5 / pi, 0.5 / (1.0 - pi))[:, None]
    return gains
