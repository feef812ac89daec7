"""One controller at one knob on one trace: quality, cost distribution, depths, exits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from adaptive_loop.cost import CostModel
from adaptive_loop.metrics import auc, gauc, logloss_from_logits
from adaptive_loop.trace import DepthTrace
from controllers.base import Controller, ControllerDecision
from oracle.tables import frame_to_markdown


@dataclass
class ControllerReport:
    """Quality and honest cost (FLOPs/sample) of a controller on a trace."""

    controller: str
    params: dict[str, Any]
    knob_name: str
    knob: float
    n_samples: int
    auc: float
    logloss: float
    gauc: float | None
    mean_cost: float
    cost_p50: float
    cost_p90: float
    cost_p99: float
    mean_depth: float
    depth_histogram: list[int]
    mean_exits: float
    mean_controller_flops: float
    cost_vs_full_depth: float  # mean cost / cost of a fixed depth-K prediction
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """Two columns (metric, value): AUC, logloss, gAUC, cost percentiles, mean depth, exits and controller FLOPs."""
        keys = ["auc", "logloss", "gauc", "mean_cost", "cost_p50", "cost_p90", "cost_p99", "mean_depth",
                "mean_exits", "mean_controller_flops", "cost_vs_full_depth"]
        return pd.DataFrame({"metric": keys, "value": [getattr(self, k) for k in keys]})

    def to_markdown(self) -> str:
        """A markdown table of `to_frame` under the controller's name and knob, then the depth histogram."""
        head = f"### {self.controller} ({self.knob_name}={self.knob:.6g})\n\n"
        hist = "depth histogram: " + ", ".join(f"{d}: {c}" for d, c in enumerate(self.depth_histogram))
        return head + frame_to_markdown(self.to_frame(), digits=5) + "\n" + hist + "\n"


def evaluate(
    controller: Controller, trace: DepthTrace, decision: ControllerDecision | None = None, with_gauc: bool = True
) -> ControllerReport:
    """Evaluate a fitted controller on a trace (pass `decision` to reuse one already made)."""
    d = controller.decide(trace) if decision is None else decision
    z = d.logits(trace)
    y = trace.labels
    n = trace.n_samples
    if n:
        p50, p90, p99 = (float(v) for v in np.percentile(d.cost, [50, 90, 99]))
    else:
        p50 = p90 = p99 = float("nan")
    full = float(CostModel.from_trace(trace).fixed_depth(trace.max_depth))
    return ControllerReport(
        controller=controller.name or type(controller).__name__,
        params={k: (v.item() if hasattr(v, "item") else v) for k, v in controller.get_params(deep=False).items()},
        knob_name=controller.budget_param,
        knob=float(controller.knob),
        n_samples=n,
        auc=auc(y, z),
        logloss=logloss_from_logits(y, z) if n else float("nan"),
        gauc=gauc(y, z, trace.groups) if (with_gauc and trace.groups is not None) else None,
        mean_cost=d.mean_cost,
        cost_p50=p50,
        cost_p90=p90,
        cost_p99=p99,
        mean_depth=float(d.depth.mean()) if n else float("nan"),
        depth_histogram=np.bincount(d.depth, minlength=trace.n_depths).astype(int).tolist(),
        mean_exits=float(d.exits.mean()) if n else float("nan"),
        mean_controller_flops=float(d.controller_flops.mean()) if n else float("nan"),
        cost_vs_full_depth=d.mean_cost / full if full > 0 else float("nan"),
    )
