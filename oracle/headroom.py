"""The headroom table: how much better per-sample depth could be than any fixed depth.

Rows: every fixed depth (AUC, logloss, gAUC when the trace has groups, FLOPs/sample), the
best fixed depth (highest AUC, ties to the shallowest), the label-aware oracle and, when
asked, the cost-aware oracle. The gap `oracle AUC - best fixed AUC` is the headroom a
controller can at most capture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from adaptive_loop.cost import CostModel
from adaptive_loop.depth_targets import oracle_depths, per_sample_bce
from adaptive_loop.metrics import auc, gauc, logloss_from_logits
from adaptive_loop.trace import DepthTrace
from oracle.tables import frame_to_markdown, frame_to_text


@dataclass(frozen=True)
class DepthScore:
    """Quality and cost of predicting every sample at one fixed depth."""

    depth: int
    flops: float
    auc: float
    logloss: float
    gauc: float | None = None


@dataclass(frozen=True)
class OracleScore:
    """Quality and cost of a per-sample depth allocation (oracle or cost-aware oracle)."""

    name: str
    auc: float
    logloss: float
    gauc: float | None
    mean_flops: float
    mean_depth: float
    depth_counts: list[int]
    cost_lambda: float = 0.0


@dataclass
class HeadroomTable:
    """Fixed depths vs. the oracle on one trace."""

    fixed: list[DepthScore]
    oracle: OracleScore
    cost_aware: OracleScore | None = None
    n_samples: int = 0
    dataset: str = ""
    split: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_fixed(self) -> DepthScore:
        """Highest-AUC fixed depth; ties go to the shallowest (cheaper) depth."""
        best = self.fixed[0]
        for row in self.fixed[1:]:
            if row.auc > best.auc:
                best = row
        return best

    @property
    def gap(self) -> float:
        """Oracle AUC minus best fixed AUC: the headroom."""
        return self.oracle.auc - self.best_fixed.auc

    def to_frame(self) -> pd.DataFrame:
        """One row per fixed depth, the best fixed depth, the oracle(s) and the gap.

        The gAUC column is dropped when no fixed depth has a gAUC (no groups).
        """
        rows = [
            {"row": f"fixed depth {r.depth}", "depth": r.depth, "flops": r.flops, "auc": r.auc,
             "logloss": r.logloss, "gauc": r.gauc}
            for r in self.fixed
        ]
        best = self.best_fixed
        rows.append({"row": f"best fixed (depth {best.depth})", "depth": best.depth, "flops": best.flops,
                     "auc": best.auc, "logloss": best.logloss, "gauc": best.gauc})
        for o in (self.oracle, self.cost_aware):
            if o is not None:
                rows.append({"row": o.name, "depth": o.mean_depth, "flops": o.mean_flops, "auc": o.auc,
                             "logloss": o.logloss, "gauc": o.gauc})
        rows.append({"row": "gap (oracle - best fixed)", "depth": None, "flops": None, "auc": self.gap,
                     "logloss": self.oracle.logloss - best.logloss,
                     "gauc": None if best.gauc is None or self.oracle.gauc is None else self.oracle.gauc - best.gauc})
        frame = pd.DataFrame(rows, columns=["row", "depth", "flops", "auc", "logloss", "gauc"])
        if all(r.gauc is None for r in self.fixed):
            frame = frame.drop(columns="gauc")
        return frame.rename(columns={"depth": "depth (mean)", "flops": "FLOPs/sample"})

    def to_markdown(self) -> str:
        """The table as markdown under a title naming the dataset, split and sample count."""
        title = f"Headroom on {self.dataset or 'trace'}{'/' + self.split if self.split else ''} ({self.n_samples} samples)"
        return f"### {title}\n\n" + frame_to_markdown(self.to_frame())

    def to_text(self) -> str:
        """The table as fixed-width text (also what `str()` gives)."""
        return frame_to_text(self.to_frame())

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict[str, Any]:
        """Fixed-depth rows, best fixed depth, oracle(s), gap and extras as a JSON-ready dict."""
        return {
            "n_samples": self.n_samples,
            "dataset": self.dataset,
            "split": self.split,
            "fixed": [asdict(r) for r in self.fixed],
            "best_fixed_depth": self.best_fixed.depth,
            "best_fixed_auc": self.best_fixed.auc,
            "oracle": asdict(self.oracle),
            "cost_aware_oracle": None if self.cost_aware is None else asdict(self.cost_aware),
            "gap_auc": self.gap,
            **self.extra,
        }


def fixed_depth_scores(trace: DepthTrace) -> list[DepthScore]:
    """AUC, logloss, gAUC and FLOPs of every fixed depth."""
    costs = CostModel.from_trace(trace).depth_costs(trace.max_depth)
    out = []
    for t in range(trace.n_depths):
        z = trace.logits[:, t]
        out.append(
            DepthScore(
                depth=t,
                flops=float(costs[t]),
                auc=auc(trace.labels, z),
                logloss=_logloss(trace.labels, z),
                gauc=None if trace.groups is None else gauc(trace.labels, z, trace.groups),
            )
        )
    return out


def score_allocation(trace: DepthTrace, depths: np.ndarray, name: str, cost_lambda: float = 0.0) -> OracleScore:
    """Quality and fixed-depth cost of predicting each sample at its own depth."""
    z = trace.logits_at(depths)
    costs = CostModel.from_trace(trace).depth_costs(trace.max_depth)
    return OracleScore(
        name=name,
        auc=auc(trace.labels, z),
        logloss=_logloss(trace.labels, z),
        gauc=None if trace.groups is None else gauc(trace.labels, z, trace.groups),
        mean_flops=float(costs[depths].mean()) if depths.size else float("nan"),
        mean_depth=float(depths.mean()) if depths.size else float("nan"),
        depth_counts=np.bincount(depths, minlength=trace.n_depths).astype(int).tolist(),
        cost_lambda=cost_lambda,
    )


def headroom_table(trace: DepthTrace, cost_lambda: float | None = None) -> HeadroomTable:
    """Every fixed depth, the best fixed depth, the oracle (and cost-aware oracle) and the gap."""
    bce = per_sample_bce(trace)
    oracle = score_allocation(trace, oracle_depths(trace, bce=bce), "oracle")
    cost_aware = None
    if cost_lambda is not None and cost_lambda > 0:
        cost_aware = score_allocation(
            trace, oracle_depths(trace, cost_lambda, bce=bce), f"cost-aware oracle (lambda={cost_lambda:g})", cost_lambda
        )
    return HeadroomTable(
        fixed=fixed_depth_scores(trace),
        oracle=oracle,
        cost_aware=cost_aware,
        n_samples=trace.n_samples,
        dataset=trace.meta.dataset,
        split=trace.meta.split,
    )


def _logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    return logloss_from_logits(labels, logits) if len(labels) else float("nan")
