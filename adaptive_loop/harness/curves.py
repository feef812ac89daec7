"""AUC-vs-FLOPs curves, the fixed-depth frontier and headroom captured.

The fixed-depth frontier
------------------------
Fixed depths give points (cost_t, AUC_t). A fixed-depth user with budget B picks the best
depth that fits, or splits traffic between two depths. The frontier used here:

- keeps only the fixed depths that beat every cheaper depth (a deeper depth with lower AUC,
  i.e. overthinking, is never worth paying for), then
- interpolates AUC **linearly in cost** between adjacent kept depths, and stays flat at the
  best fixed AUC beyond the best depth's cost (and at depth 0 below its cost).

Linear interpolation is a convention, not a measurement: AUC of a mixture is not linear in
the mixing fraction. The **random-mixture frontier** measures it: at cost B between kept
depths a < b, a seeded random fraction f = (B - cost_a) / (cost_b - cost_a) of the samples
(exactly round(f * n) of them) is predicted at depth b and the rest at a, and that mixed
prediction's AUC is computed.

Headroom captured at budget B
-----------------------------
    captured = (AUC_controller(B) - AUC_frontier(B)) / (AUC_oracle - AUC_best_fixed)

with B the controller's realised mean cost: 0 means no better than fixed depths at the
same cost, 1 means the whole oracle gap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from adaptive_loop.cost import CostModel
from adaptive_loop.metrics import auc, logloss_from_logits
from adaptive_loop.trace import DepthTrace
from controllers.base import Controller
from oracle.tables import frame_to_markdown


@dataclass
class Curve:
    """AUC (and logloss) against mean cost for a sweep of one controller's knob."""

    name: str
    knob_name: str
    knobs: np.ndarray
    costs: np.ndarray
    aucs: np.ndarray
    loglosses: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per knob value: the knob, mean cost (FLOPs/sample), AUC and logloss."""
        return pd.DataFrame({self.knob_name: self.knobs, "mean_cost": self.costs, "auc": self.aucs, "logloss": self.loglosses})

    def to_markdown(self) -> str:
        """The curve as a titled markdown table."""
        return f"### {self.name}\n\n" + frame_to_markdown(self.to_frame(), digits=5)

    def pareto(self) -> "Curve":
        """Only the points no other point beats on both cost and AUC, by cost."""
        idx = pareto_front(self.costs, self.aucs)
        return Curve(self.name, self.knob_name, self.knobs[idx], self.costs[idx], self.aucs[idx], self.loglosses[idx])

    def to_dict(self) -> dict[str, Any]:
        """The curve as a JSON-ready dict of lists."""
        return {"name": self.name, "knob_name": self.knob_name, "knobs": self.knobs.tolist(),
                "costs": self.costs.tolist(), "aucs": self.aucs.tolist(), "loglosses": self.loglosses.tolist()}


def pareto_front(costs: np.ndarray, aucs: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (lower cost, higher AUC), sorted by cost."""
    c = np.asarray(costs, dtype=np.float64)
    a = np.asarray(aucs, dtype=np.float64)
    order = np.lexsort((-a, c))  # by cost, best AUC first among equal costs
    keep, best = [], -np.inf
    for i in order:
        if a[i] > best:
            keep.append(i)
            best = a[i]
    return np.asarray(keep, dtype=np.int64)


def sweep(
    controller: Controller,
    trace: DepthTrace,
    values: Sequence[float] | np.ndarray | None = None,
    n_points: int = 50,
    name: str | None = None,
) -> Curve:
    """Evaluate a fitted controller at many knob values (default `knob_grid`); knob restored after."""
    knobs = controller.knob_grid(trace, n_points) if values is None else np.asarray(values)
    costs = np.empty(len(knobs))
    aucs = np.empty(len(knobs))
    losses = np.empty(len(knobs))
    y = trace.labels
    for i, value in enumerate(knobs):
        with controller.knob_set_to(value):
            d = controller.decide(trace)
        z = d.logits(trace)
        costs[i] = d.mean_cost
        aucs[i] = auc(y, z)
        losses[i] = logloss_from_logits(y, z)
    order = np.argsort(costs, kind="stable")
    return Curve(name or controller.name, controller.budget_param, np.asarray(knobs)[order], costs[order], aucs[order], losses[order])


@dataclass
class FixedFrontier:
    """Fixed-depth points and the kept (Pareto) depths the frontier interpolates between."""

    costs: np.ndarray  # [K+1]
    aucs: np.ndarray  # [K+1]
    kept: np.ndarray  # depths that beat every cheaper depth, increasing

    @property
    def best_depth(self) -> int:
        return int(self.kept[-1])

    @property
    def best_auc(self) -> float:
        return float(self.aucs[self.best_depth])

    def auc_at(self, cost: float | np.ndarray) -> float | np.ndarray:
        """Interpolated frontier AUC at a cost (FLOPs/sample)."""
        out = np.interp(cost, self.costs[self.kept], self.aucs[self.kept])
        return float(out) if np.ndim(out) == 0 else out

    def bracket(self, cost: float) -> tuple[int, int, float]:
        """(shallower kept depth, deeper kept depth, fraction sent deeper) realising `cost`."""
        kc = self.costs[self.kept]
        if cost <= kc[0]:
            return int(self.kept[0]), int(self.kept[0]), 0.0
        if cost >= kc[-1]:
            return int(self.kept[-1]), int(self.kept[-1]), 0.0
        j = int(np.searchsorted(kc, cost, side="right"))
        a, b = int(self.kept[j - 1]), int(self.kept[j])
        return a, b, float((cost - kc[j - 1]) / (kc[j] - kc[j - 1]))

    def to_dict(self) -> dict[str, Any]:
        """Per-depth costs (FLOPs/sample) and AUCs, and the kept depths, as a JSON-ready dict."""
        return {"costs": self.costs.tolist(), "aucs": self.aucs.tolist(), "kept_depths": self.kept.tolist()}


def fixed_frontier(trace: DepthTrace, pareto_only: bool = True) -> FixedFrontier:
    """The fixed-depth frontier of a trace (`pareto_only=False` keeps every depth)."""
    costs = CostModel.from_trace(trace).depth_costs(trace.max_depth)
    aucs = np.array([auc(trace.labels, trace.logits[:, t]) for t in range(trace.n_depths)])
    if pareto_only:
        kept = [0]
        for t in range(1, trace.n_depths):
            if aucs[t] > aucs[kept[-1]]:
                kept.append(t)
    else:
        kept = list(range(trace.n_depths))
    return FixedFrontier(costs, aucs, np.asarray(kept, dtype=np.int64))


def mixture_depths(frontier: FixedFrontier, n: int, cost: float, seed: int = 0) -> np.ndarray:
    """Depths of the seeded random mixture of two adjacent kept depths with mean cost `cost`."""
    a, b, f = frontier.bracket(cost)
    depth = np.full(n, a, dtype=np.int64)
    k = int(round(f * n))
    if k and b != a:
        deeper = np.random.default_rng(seed).choice(n, size=k, replace=False)
        depth[deeper] = b
    return depth


def mixture_auc(trace: DepthTrace, frontier: FixedFrontier, cost: float, seed: int = 0) -> float:
    """Measured AUC of the random-mixture frontier at `cost`."""
    d = mixture_depths(frontier, trace.n_samples, cost, seed)
    return auc(trace.labels, trace.logits[np.arange(trace.n_samples), d])


@dataclass(frozen=True)
class HeadroomCaptured:
    """A controller's AUC against the fixed frontier at its own mean cost, as a share of the oracle gap."""

    cost: float
    controller_auc: float
    frontier_auc: float
    mixture_auc: float
    best_fixed_auc: float
    oracle_auc: float
    captured: float  # against the interpolated frontier
    captured_mixture: float  # against the measured random mixture

    def to_dict(self) -> dict[str, Any]:
        """The comparison as a JSON-ready dict."""
        return asdict(self)


def headroom_ratio(controller_auc: float, frontier_auc: float, oracle_auc: float, best_fixed_auc: float) -> float:
    """(controller - frontier) / (oracle - best fixed); NaN when there is no gap."""
    gap = oracle_auc - best_fixed_auc
    return float((controller_auc - frontier_auc) / gap) if gap > 0 else float("nan")


def excess_share(controller_auc: float, frontier_auc: float, excess: float | None) -> float:
    """(controller - frontier) / excess headroom; NaN when the excess is unknown or not positive.

    The excess is the oracle headroom minus what the same oracle gains over predictions that
    differ in no depth (`oracle.excess`): the part of the headroom a controller could capture
    at all. The numerator is `headroom_ratio`'s, so the two shares differ only in the denominator.
    """
    if excess is None or not excess > 0:
        return float("nan")
    return float((controller_auc - frontier_auc) / excess)


def headroom_captured(
    controller_auc: float, cost: float, trace: DepthTrace, oracle_auc: float,
    frontier: FixedFrontier | None = None, seed: int = 0,
) -> HeadroomCaptured:
    """Headroom captured by a controller with AUC `controller_auc` at mean cost `cost`."""
    fr = fixed_frontier(trace) if frontier is None else frontier
    f_auc = float(fr.auc_at(cost))
    m_auc = mixture_auc(trace, fr, cost, seed)
    return HeadroomCaptured(
        cost=float(cost),
        controller_auc=float(controller_auc),
        frontier_auc=f_auc,
        mixture_auc=m_auc,
        best_fixed_auc=fr.best_auc,
        oracle_auc=float(oracle_auc),
        captured=headroom_ratio(controller_auc, f_auc, oracle_auc, fr.best_auc),
        captured_mixture=headroom_ratio(controller_auc, m_auc, oracle_auc, fr.best_auc),
    )
