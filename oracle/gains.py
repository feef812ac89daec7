"""Per-sample gain targets for learned controllers.

A learned halting head or depth predictor needs to know, per sample, how much each depth
improves the loss. Two views, both `[n, K+1]` float64 with positive = better:

- `over_depth0[:, t] = BCE_0 - BCE_t` (column 0 is 0): what t loops buy over not looping;
- `over_previous[:, t] = BCE_{t-1} - BCE_t` (column 0 is 0): what the t-th loop step buys,
  the Ouro-style "improvement of the next step" target.
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
