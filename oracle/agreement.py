"""Does the oracle find the depth a sample really needs? (synthetic data only)

Synthetic traces carry a `needed_depth` feature: the depth the generator made each sample
need. Agreement between it and the oracle depth checks that the oracle (and so every
target derived from it) measures what it claims: a confusion matrix (rows = needed depth,
columns = oracle depth), the exact and within-one agreement rates, and Spearman's rank
correlation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from adaptive_loop.depth_targets import oracle_depths
from adaptive_loop.errors import TraceError
from adaptive_loop.trace import DepthTrace


@dataclass(frozen=True)
class DepthAgreement:
    """Agreement of oracle depths with the generator's needed depths."""

    confusion: np.ndarray  # [needed 0..max needed, oracle 0..max] counts
    exact: float
    within_one: float
    spearman: float
    n_samples: int

    def to_frame(self) -> pd.DataFrame:
        """The confusion matrix as a table: one row per needed depth, one column per oracle depth."""
        rows, cols = self.confusion.shape
        frame = pd.DataFrame(self.confusion, columns=[f"oracle {j}" for j in range(cols)])
        frame.insert(0, "needed", list(range(rows)))
        return frame

    def to_dict(self) -> dict[str, Any]:
        """Confusion matrix (rows needed, columns oracle), agreement rates and Spearman's rho as a JSON-ready dict."""
        return {
            "confusion_rows_needed_cols_oracle": self.confusion.tolist(),
            "exact": self.exact,
            "within_one": self.within_one,
            "spearman": self.spearman,
            "n_samples": self.n_samples,
        }


def depth_agreement(oracle_depth: np.ndarray, needed_depth: np.ndarray) -> DepthAgreement:
    """Confusion matrix, exact / within-one agreement and Spearman correlation."""
    o = np.asarray(oracle_depth).astype(np.int64).reshape(-1)
    nd = np.asarray(needed_depth).reshape(-1)
    if o.shape != nd.shape:
        raise ValueError(f"oracle and needed depths differ in length: {o.size} vs {nd.size}")
    if nd.size and (not np.all(np.isfinite(nd.astype(np.float64))) or np.any(nd < 0) or np.any(nd != np.round(nd))):
        raise TraceError("needed_depth must hold non-negative integers")
    nd = nd.astype(np.int64)
    # Rows span the needed depths the generator can produce, columns the depths the oracle
    # can choose (the trace may go deeper than any needed depth).
    confusion = np.zeros((int(nd.max(initial=0)) + 1, int(o.max(initial=0)) + 1), dtype=np.int64)
    np.add.at(confusion, (nd, o), 1)
    if o.size < 2 or np.all(o == o[0]) or np.all(nd == nd[0]):
        rho = float("nan")
    else:
        from scipy.stats import spearmanr  # here, so that importing `oracle` does not load scipy

        rho = float(spearmanr(nd, o).statistic)
    return DepthAgreement(
        confusion=confusion,
        exact=float(np.mean(o == nd)) if o.size else float("nan"),
        within_one=float(np.mean(np.abs(o - nd) <= 1)) if o.size else float("nan"),
        spearman=rho,
        n_samples=int(o.size),
    )


def needed_depth_agreement(
    trace: DepthTrace, depths: np.ndarray | None = None, feature: str = "needed_depth"
) -> DepthAgreement | None:
    """Agreement on a trace with a `needed_depth` feature; None when the trace has none."""
    if feature not in trace.features:
        return None
    o = oracle_depths(trace) if depths is None else depths
    return depth_agreement(o, trace.features[feature])
