"""Fixed depth: every sample runs the same number of loop steps (the baseline to beat).

It is an up-front controller: the depth is known before looping, so the engine runs each
row straight to it and evaluates the Exit once (`exits = 1`, no controller FLOPs). It also
answers `should_stop` (stop at depth >= knob) for engines that only speak the incremental
protocol, though such an engine would pay Exits it does not need.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from adaptive_loop.errors import ConfigError
from adaptive_loop.trace import DepthTrace
from controllers.base import Controller, ControllerDecision, OnlineState, StepView
from controllers.registry import register_controller


@register_controller
class FixedDepth(Controller):
    """Run every sample to `depth` loop steps."""

    name: ClassVar[str] = "fixed"
    budget_param: ClassVar[str] = "depth"
    kind: ClassVar[str] = "upfront"
    uses_first_step: ClassVar[bool] = False  # does not look at the depth-0 prediction
    step_inputs: ClassVar[frozenset[str]] = frozenset()  # reads nothing but the row count

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth

    def _validate_params(self) -> None:
        if not isinstance(self.depth, (int, np.integer)) or isinstance(self.depth, bool) or self.depth < 0:
            raise ConfigError(f"FixedDepth: depth must be an integer >= 0, got {self.depth!r}")

    def _check_depth(self, max_depth: int) -> int:
        self._validate_params()
        if self.depth > max_depth:
            raise ConfigError(f"FixedDepth: depth={self.depth} exceeds the trace's maximum depth K={max_depth}")
        return int(self.depth)

    def decide(self, trace: DepthTrace) -> ControllerDecision:
        """Every row at `depth` with one Exit and no controller FLOPs; raises `ConfigError` if `depth` > K."""
        self._check_trace(trace)
        d = self._check_depth(trace.max_depth)
        n = trace.n_samples
        return ControllerDecision.from_depths(trace, np.full(n, d, dtype=np.int64), np.ones(n, dtype=np.int64), 0.0)

    def decide_upfront(self, step: StepView) -> np.ndarray:
        """Depth for each row of `step` (only `row_index` is used)."""
        self._check_fitted()
        return np.full(step.n_rows, self._check_depth(self.max_depth_), dtype=np.int64)

    def should_stop(self, step: StepView, state: OnlineState | None = None) -> np.ndarray:
        """Incremental protocol: stop every row once `step.depth` reaches `depth` (or K)."""
        state = self._online(step, state)
        stop = step.depth >= min(self._check_depth(state.max_depth), state.max_depth)
        return np.full(step.n_rows, stop, dtype=bool)

    def _knob_candidates(self, trace: DepthTrace) -> np.ndarray:
        return np.arange(trace.max_depth + 1)

    def _cast_knob(self, value: Any) -> int:
        return int(value)
