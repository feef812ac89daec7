"""A mean-cost budget over a stream of batches, met by re-pricing each batch without labels.

Over a validation set, `calibrate(valid, budget)` fixes the price `lam` of an up-front
allocator and every later row uses it. Over a stream, `StreamingBudget` re-solves lam on
each batch so that the running mean cost over everything seen meets the budget
(overspending in one batch is paid back in the next ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import BudgetError, ConfigError
from adaptive_loop.trace import DepthTrace, TraceMeta
from controllers.base import StepView
from controllers.learned.utility import UtilityAllocator, allocate


@dataclass
class StreamResult:
    """Depths and costs of a stream of batches allocated under a running-mean budget."""

    depth: np.ndarray
    cost: np.ndarray
    lams: list[float] = field(default_factory=list)
    batch_mean_cost: list[float] = field(default_factory=list)

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean()) if self.cost.size else float("nan")


class StreamingBudget:
    """Meets a mean-cost budget over a stream of batches by re-pricing each batch.

    Batch b gets the target (budget * (seen + m) - spent) / m, so that the running mean over
    all rows so far meets the budget; its price is the most expensive one that fits that
    target on the batch's own predicted utilities (no labels). A batch that cannot get
    cheap enough takes its cheapest allocation and later batches pay it back.
    """

    def __init__(self, controller: UtilityAllocator, budget: float, meta: TraceMeta) -> None:
        controller._check_fitted()
        self.controller = controller
        self.budget = float(budget)
        self.meta = meta
        self.exits_by_depth, self.units = controller.exits_by_depth_, controller.units_
        self.cost_model = CostModel.from_meta(meta)
        self.spent = 0.0
        self.seen = 0
        self.lams: list[float] = []

    def allocate(self, step: StepView) -> tuple[np.ndarray, np.ndarray]:
        """(depth [m], cost [m]) for one batch shown at depth 0."""
        u, flops = self.controller._view_utilities(step)
        m = step.n_rows
        if m == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        target = (self.budget * (self.seen + m) - self.spent) / m
        lam = self.controller.lam_for_budget(u, flops, self.meta, target)
        depth = allocate(u, self.units, lam)
        cost = np.asarray(self.cost_model.cost(depth, self.exits_by_depth[depth], flops), dtype=np.float64)
        self.spent += float(cost.sum())
        self.seen += m
        self.lams.append(lam)
        return depth, cost

    def run(self, steps: Iterable[StepView]) -> StreamResult:
        """Allocate every batch of `steps`, in order.

        Returns the depths and costs of all rows plus the price and mean cost of each batch.
        """
        depths, costs, means = [], [], []
        for step in steps:
            d, c = self.allocate(step)
            depths.append(d)
            costs.append(c)
            means.append(float(c.mean()) if c.size else float("nan"))
        return StreamResult(np.concatenate(depths) if depths else np.zeros(0, np.int64),
                            np.concatenate(costs) if costs else np.zeros(0), list(self.lams), means)


def stream_trace(controller: UtilityAllocator, trace: DepthTrace, budget: float, batch_size: int) -> StreamResult:
    """`StreamingBudget` over consecutive batches of a trace (rows in trace order)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    lo = float(CostModel.from_trace(trace).fixed_depth(0))
    if budget < lo:
        raise BudgetError(f"streaming budget {budget:.6g} FLOPs/sample is below the cost of depth 0 ({lo:.6g})")
    streamer = StreamingBudget(controller, budget, trace.meta)

    def views() -> Iterable[StepView]:
        for start in range(0, trace.n_samples, batch_size):
            rows = np.arange(start, min(start + batch_size, trace.n_samples))
            yield StepView(
                depth=0, logits=trace.logits[rows, 0], row_index=rows - start,
                hidden=None if trace.hidden is None else trace.hidden[rows, 0, :],
                features={k: v[rows] for k, v in trace.features.items()},
            )

    return streamer.run(views())
