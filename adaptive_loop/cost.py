"""The cost model: what a sample's prediction really cost, in FLOPs.

A sample that entered the model, ran `depth` loop steps, evaluated the Exit block
`exits` times and ran controller computations worth `controller_flops` costs

    entry + depth * loop + exits * exit + controller_flops

An incremental controller (confidence, patience, halting head) evaluates the Exit at every
depth it visits, so `exits = depth + 1`. An up-front controller (depth predictor) pays
its features and predictor once and evaluates the Exit once at the chosen depth, plus
once at depth 0 if its features use the depth-0 prediction. Every controller reports its
cost through this class, so costs are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaptive_loop.trace import DepthTrace, TraceMeta


@dataclass(frozen=True)
class CostModel:
    """Per-sample FLOPs of each model part (multiply-add = 2 FLOPs)."""

    entry: float
    loop: float
    exit: float

    @classmethod
    def from_meta(cls, meta: TraceMeta) -> "CostModel":
        """The per-part FLOPs/sample recorded in a trace's metadata (`flops_entry`, `flops_loop`, `flops_exit`)."""
        return cls(entry=float(meta.flops_entry), loop=float(meta.flops_loop), exit=float(meta.flops_exit))

    @classmethod
    def from_trace(cls, trace: DepthTrace) -> "CostModel":
        """The cost model of the model that wrote `trace` (from `trace.meta`)."""
        return cls.from_meta(trace.meta)

    def cost(
        self,
        depth: np.ndarray | int,
        exits: np.ndarray | int,
        controller_flops: np.ndarray | float = 0.0,
    ) -> np.ndarray:
        """Per-sample FLOPs for samples that ran `depth` loops and `exits` exit evaluations."""
        depth_arr = np.asarray(depth, dtype=np.float64)
        exits_arr = np.asarray(exits, dtype=np.float64)
        return self.entry + depth_arr * self.loop + exits_arr * self.exit + np.asarray(controller_flops, dtype=np.float64)

    def fixed_depth(self, depth: int | np.ndarray) -> np.ndarray | float:
        """Cost of a plain fixed-depth model: Entry, `depth` loops, one Exit."""
        value = self.cost(depth, 1)
        return float(value) if np.ndim(value) == 0 else value

    def depth_costs(self, max_depth: int) -> np.ndarray:
        """Cost of a plain fixed-depth prediction at each depth 0..max_depth, float64 [K+1]."""
        return np.asarray(self.fixed_depth(np.arange(int(max_depth) + 1)), dtype=np.float64)

    def depth_units(self, max_depth: int, uses_first_step: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(exits [K+1], extra cost over depth 0 in Loop-step units [K+1]) of answering at each depth.

        The depth is chosen before looping: one Exit evaluation at the chosen depth, plus one
        at depth 0 for t > 0 when `uses_first_step` (the depth-0 prediction fed the choice).
        Loop-step units make a price per unit read as "per loop step", whatever the model
        size; with a FLOP-free loop the raw FLOPs are used.
        """
        t = np.arange(int(max_depth) + 1)
        exits = np.where((t > 0) & uses_first_step, 2, 1).astype(np.int64)
        cost = np.asarray(self.cost(t, exits), dtype=np.float64)
        unit = self.loop if self.loop > 0 else 1.0
        return exits, (cost - cost[0]) / unit

    def incremental(self, depth: np.ndarray | int, controller_flops_per_step: float = 0.0) -> np.ndarray:
        """Cost when the Exit (and a per-step controller) runs at every depth 0..depth."""
        depth_arr = np.asarray(depth, dtype=np.float64)
        return self.cost(depth_arr, depth_arr + 1, (depth_arr + 1) * controller_flops_per_step)
