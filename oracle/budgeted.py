"""The budgeted oracle: the best AUC found with labels when the mean cost must stay <= B.

A controller at mean cost B is compared with this reference at the same B. AUC is not a sum
over samples, so the exact best allocation under a budget is a hard combinatorial problem;
what is computed here is a label-aware *reference*, not a proven upper bound:

1. **Lagrangian** (DCAF-style knapsack). Each sample takes `argmin_t BCE_t + lam * t` (cost
   in Loop-step units; every depth costs `cost_0 + t * loop` as a fixed-depth prediction),
   with `lam` the smallest value whose mean cost fits the budget. Instead of bisecting on
   `lam`, the exact path is computed: the per-sample choice as `lam` falls walks along the
   lower convex hull of the points `(t, BCE_t)`, so sorting all hull segments by their
   slope (BCE gained per Loop step) gives every breakpoint at once. The Lagrangian solution
   takes whole groups of equal slope; `lam` is reported so that
   `argmin_t BCE_t + lam * t` (ties to the shallowest) reproduces it.
2. **Greedy**: the same sorted upgrades, taken one sample at a time until the budget is
   full (it spends the budget more completely than 1 when slopes tie).
3. **Rank greedy** (AUC-aware): AUC of a positive is the fraction of negatives ranked below
   it, so with the other samples held at a reference allocation, moving one sample changes
   AUC by a known amount. Hull upgrades ordered by that rank gain per Loop step, with the
   depth-0 and the oracle allocations as references.

Each allocation is scored by its true AUC. At budget B the curve reports the best of them
and the running maximum over smaller budgets (an allocation that fits B' <= B also fits B).
At the largest budget every method reaches the unconstrained oracle, which maximises every
positive/negative comparison at once, so the curve ends at the oracle AUC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from adaptive_loop.cost import CostModel
from adaptive_loop.depth_targets import oracle_depths, per_sample_bce, rank_utility
from adaptive_loop.errors import BudgetError
from adaptive_loop.hull import hull_walk
from adaptive_loop.metrics import auc
from adaptive_loop.trace import DepthTrace
from oracle.tables import frame_to_markdown

METHODS = ("lagrangian", "greedy", "rank_greedy")


@dataclass(frozen=True)
class HullPath:
    """All per-sample hull upgrades sorted by gain per Loop step (largest first).

    Segment j moves sample `sample[j]` to depth `to_depth[j]` for `steps[j]` extra Loop-step
    units and gains `slope[j] * steps[j]` of utility.
    """

    sample: np.ndarray
    to_depth: np.ndarray
    steps: np.ndarray
    slope: np.ndarray
    n_samples: int

    @property
    def cum_steps(self) -> np.ndarray:
        return np.cumsum(self.steps)

    def allocation(self, n_segments: int) -> np.ndarray:
        """Depth per sample after taking the first `n_segments` upgrades."""
        depth = np.zeros(self.n_samples, dtype=np.int64)
        if n_segments > 0:
            np.maximum.at(depth, self.sample[:n_segments], self.to_depth[:n_segments])
        return depth


def hull_path(utility: np.ndarray, step_cost: np.ndarray) -> HullPath:
    """Lower-convex-hull upgrades of `utility` [n, D] (lower is better) over costs `step_cost` [D].

    `step_cost` must be increasing with step_cost[0] == 0. The walk is
    `adaptive_loop.hull.hull_walk` on minus the utility, stopping at every collinear point
    and at the first upgrade that does not lower the utility; ties in slope keep the hull
    order of each sample (segments come hull step by hull step, then are stably sorted).
    """
    n = utility.shape[0]
    seg = hull_walk(-np.asarray(utility, dtype=np.float64), step_cost, ties="nearest", improving_only=True)
    order = np.argsort(-seg.slope, kind="stable")
    return HullPath(seg.row[order], seg.to_depth[order], seg.step[order], seg.slope[order], n)


@dataclass(frozen=True)
class BudgetedAllocation:
    """One label-aware allocation under a budget."""

    method: str
    budget: float
    depths: np.ndarray
    mean_cost: float
    auc: float
    lam: float | None = None  # Lagrange multiplier (nats per Loop step) for the Lagrangian method


@dataclass
class BudgetedOracleCurve:
    """Best label-aware AUC per budget (FLOPs/sample), with each method's AUC beside it."""

    budgets: np.ndarray
    auc: np.ndarray  # running max over budgets of the best method
    method_auc: dict[str, np.ndarray]
    method_cost: dict[str, np.ndarray]
    lam: np.ndarray
    oracle_auc: float
    extra: dict[str, Any] = field(default_factory=dict)

    def auc_at(self, budget: float | np.ndarray) -> np.ndarray | float:
        """Envelope AUC at a budget, linearly interpolated between computed budgets."""
        out = np.interp(budget, self.budgets, self.auc)
        return float(out) if np.ndim(out) == 0 else out

    def to_frame(self) -> pd.DataFrame:
        """One row per budget (FLOPs/sample): envelope AUC, each method's AUC and the Lagrange multiplier."""
        data: dict[str, Any] = {"budget (FLOPs/sample)": self.budgets, "auc": self.auc}
        for m in self.method_auc:
            data[f"auc_{m}"] = self.method_auc[m]
        data["lambda"] = self.lam
        return pd.DataFrame(data)

    def to_markdown(self) -> str:
        """The curve as a titled markdown table."""
        return "### Budgeted oracle\n\n" + frame_to_markdown(self.to_frame())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: budgets, envelope AUC, each method's AUC and mean cost, multipliers.

        Also the unconstrained oracle AUC.
        """
        return {
            "budgets": self.budgets.tolist(),
            "auc": self.auc.tolist(),
            "method_auc": {k: v.tolist() for k, v in self.method_auc.items()},
            "method_mean_cost": {k: v.tolist() for k, v in self.method_cost.items()},
            "lambda": self.lam.tolist(),
            "oracle_auc": self.oracle_auc,
        }


class BudgetedOracle:
    """Precomputed hull paths of one trace; answers any number of budgets cheaply."""

    def __init__(self, trace: DepthTrace, methods: Sequence[str] = METHODS) -> None:
        unknown = set(methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown budgeted-oracle methods {sorted(unknown)}; choose from {METHODS}")
        self.trace = trace
        self.methods = tuple(methods)
        cost_model = CostModel.from_trace(trace)
        self.costs = cost_model.depth_costs(trace.max_depth)
        self.units = cost_model.depth_units(trace.max_depth)[1]
        self.bce = per_sample_bce(trace)
        self.bce_path = hull_path(self.bce, self.units)
        self.rank_paths: list[HullPath] = []
        if "rank_greedy" in self.methods:
            for ref in (np.zeros(trace.n_samples, dtype=np.int64), oracle_depths(trace, bce=self.bce)):
                self.rank_paths.append(hull_path(rank_utility(trace, trace.logits_at(ref)), self.units))

    @property
    def cost_range(self) -> tuple[float, float]:
        return float(self.costs[0]), float(self.costs[-1])

    def _max_steps(self, budget: float) -> float:
        lo, hi = self.cost_range
        if budget < lo - 1e-9 * max(abs(lo), 1.0):
            raise BudgetError(
                f"budget {budget:.6g} FLOPs/sample is below the cheapest reachable cost {lo:.6g} "
                f"(feasible range [{lo:.6g}, {hi:.6g}])"
            )
        if hi <= lo:
            return np.inf
        unit = (self.costs[1] - self.costs[0]) / self.units[1]
        return (min(budget, hi) - lo) / unit * self.trace.n_samples * (1 + 1e-12) + 1e-9

    def allocate(self, budget: float, method: str = "lagrangian") -> BudgetedAllocation:
        """The allocation of one method at one budget, scored by AUC."""
        max_steps = self._max_steps(budget)
        lam = None
        if method in ("lagrangian", "greedy"):
            path = self.bce_path
            m = int(np.searchsorted(path.cum_steps, max_steps, side="right"))
            if method == "lagrangian":
                if 0 < m < path.slope.size and path.slope[m] == path.slope[m - 1]:
                    m = int(np.searchsorted(-path.slope, -path.slope[m - 1], side="left"))
                lam = float(path.slope[m]) if m < path.slope.size else 0.0
            depths = path.allocation(m)
        elif method == "rank_greedy":
            best: np.ndarray | None = None
            best_auc = -np.inf
            for path in self.rank_paths:
                m = int(np.searchsorted(path.cum_steps, max_steps, side="right"))
                cand = path.allocation(m)
                a = auc(self.trace.labels, self.trace.logits_at(cand))
                if a > best_auc:
                    best, best_auc = cand, a
            assert best is not None
            depths = best
        else:
            raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
        return BudgetedAllocation(
            method=method,
            budget=float(budget),
            depths=depths,
            mean_cost=float(self.costs[depths].mean()),
            auc=auc(self.trace.labels, self.trace.logits_at(depths)),
            lam=lam,
        )

    def curve(self, budgets: Sequence[float] | np.ndarray | None = None, n_points: int = 21) -> BudgetedOracleCurve:
        """Best label-aware AUC at each budget (sorted ascending)."""
        lo, hi = self.cost_range
        b = np.linspace(lo, hi, n_points) if budgets is None else np.sort(np.asarray(budgets, dtype=np.float64))
        method_auc = {m: np.empty(b.size) for m in self.methods}
        method_cost = {m: np.empty(b.size) for m in self.methods}
        lam = np.full(b.size, np.nan)
        for i, budget in enumerate(b):
            for m in self.methods:
                alloc = self.allocate(float(budget), m)
                method_auc[m][i] = alloc.auc
                method_cost[m][i] = alloc.mean_cost
                if alloc.lam is not None:
                    lam[i] = alloc.lam
        best = np.max(np.vstack([method_auc[m] for m in self.methods]), axis=0)
        envelope = np.maximum.accumulate(best)
        oracle_auc = auc(self.trace.labels, self.trace.logits_at(oracle_depths(self.trace, bce=self.bce)))
        return BudgetedOracleCurve(b, envelope, method_auc, method_cost, lam, oracle_auc)


def budgeted_oracle(trace: DepthTrace, budget: float, method: str = "lagrangian") -> BudgetedAllocation:
    """The label-aware allocation of `method` at mean cost <= `budget` FLOPs/sample."""
    return BudgetedOracle(trace, methods=(method,)).allocate(budget, method)


def budgeted_oracle_curve(
    trace: DepthTrace, budgets: Sequence[float] | np.ndarray | None = None, n_points: int = 21,
    methods: Sequence[str] = METHODS,
) -> BudgetedOracleCurve:
    """The budgeted oracle curve over `budgets` (default: n_points from depth 0 to depth K cost)."""
    return BudgetedOracle(trace, methods).curve(budgets, n_points)
