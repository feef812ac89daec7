"""The controller interface: decide, per sample, how many loop steps to run.

A controller runs two ways that must give the same depths:

- **offline** on a trace: `decide(trace) -> ControllerDecision` (vectorised numpy over all
  rows; depth, exits evaluated and controller FLOPs per sample, cost from `CostModel`);
- **online** with the model's step-wise API: `state = start(n_rows)`, then after each loop
  step the engine shows the rows still running as a `StepView` and asks
  `should_stop(view) -> bool mask`; rows with True stop and keep that depth's prediction.
  Up-front controllers instead answer `decide_upfront(view) -> depths` once, before looping.

The engine (`adaptive_loop.engine`) charges a controller what it really computed online:
an incremental rule adds `flops_per_step` to `OnlineState.controller_flops` for every row
it scores (not at a forced stop), and an up-front controller returns its per-row FLOPs from
`decide_upfront_with_flops`. `step_inputs` names the optional `StepView` parts a controller
reads ("hidden", "features"), so the engine skips computing the others.

Controllers follow scikit-learn conventions (so `sklearn.base.clone`, `get_params`,
`set_params` and Optuna work): constructor arguments are stored unchanged, `fit(trace,
targets=None)` returns self, fitted attributes end with `_`, and using a controller before
`fit` raises `NotFittedError`. Each has exactly one budget knob, named by `budget_param`;
`calibrate(trace, budget)` sets it so the mean cost on `trace` meets `budget`.

Honest cost. A sample costs Entry + depth * Loop + one Exit per evaluation + every
controller computation that ran for it. An incremental controller evaluates the Exit at
every depth it visits (`exits = depth + 1`) and runs its own rule (`flops_per_step` FLOPs)
at every visited depth below K; at K the engine stops regardless, so the rule does not run.

Most controllers are threshold rules: `controllers.incremental.IncrementalController` (its
module explains how to write one); controllers that are not subclass `Controller` directly
and implement `decide`, `should_stop` (or `decide_upfront`) and the knob-search hooks
`_knob_candidates` / `_knob_bounds`. A controller registers itself with
`controllers.registry.register_controller` and may declare its Optuna search space with the
classmethod `search_space` (used by `adaptive-loop tune controller`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np
from sklearn.base import BaseEstimator

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import BudgetError, ConfigError, NotFittedError, TraceError
from adaptive_loop.trace import DepthTrace

_BISECTION_STEPS = 60


def to_numpy(value: Any) -> Any:
    """Arrays pass through; tensors (anything with `.detach()`) are copied to numpy.

    Keeps the online path free of a torch import: the engine may hand over tensors.
    """
    if value is None or isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@dataclass
class StepView:
    """What the engine shows a controller after a loop step, for the rows still running.

    Attributes:
        depth: loop steps run so far (0 = straight after Entry).
        logits: [m] Exit logits of the running rows at this depth (None for an up-front
            call that does not use the depth-0 prediction).
        row_index: [m] positions of those rows in the batch given to `start`.
        hidden: optional [m, h] hidden summaries at this depth.
        features: optional side columns, each [m], for the same rows.
    """

    depth: int
    logits: np.ndarray | None
    row_index: np.ndarray
    hidden: np.ndarray | None = None
    features: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.depth = int(self.depth)
        self.row_index = np.asarray(to_numpy(self.row_index), dtype=np.int64).reshape(-1)
        self.logits = to_numpy(self.logits)
        self.hidden = to_numpy(self.hidden)
        if self.features is not None:
            self.features = {k: to_numpy(v) for k, v in self.features.items()}
        m = self.row_index.size
        if self.logits is not None and np.shape(self.logits) != (m,):
            raise ValueError(f"StepView at depth {self.depth}: logits have shape {np.shape(self.logits)}, expected ({m},)")
        if self.hidden is not None and (np.ndim(self.hidden) != 2 or np.shape(self.hidden)[0] != m):
            raise ValueError(f"StepView at depth {self.depth}: hidden has shape {np.shape(self.hidden)}, expected ({m}, h)")

    @property
    def n_rows(self) -> int:
        return int(self.row_index.size)


@dataclass
class ControllerDecision:
    """Per-sample outcome of a controller on a trace.

    Attributes:
        depth: int64 [n] loop steps run (the prediction used is the logit at this depth).
        exits: int64 [n] Exit evaluations paid.
        controller_flops: float64 [n] FLOPs of the controller's own computations.
        cost: float64 [n] total FLOPs from `CostModel.cost`.
    """

    depth: np.ndarray
    exits: np.ndarray
    controller_flops: np.ndarray
    cost: np.ndarray

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean()) if self.cost.size else float("nan")

    def logits(self, trace: DepthTrace) -> np.ndarray:
        """The logit each sample is predicted with (float64 [n])."""
        return trace.logits_at(self.depth)

    @classmethod
    def from_depths(
        cls, trace: DepthTrace, depth: np.ndarray, exits: np.ndarray, controller_flops: np.ndarray | float = 0.0
    ) -> "ControllerDecision":
        """A decision from per-row depths, Exit evaluations and controller FLOPs, priced by `CostModel`."""
        cm = CostModel.from_trace(trace)
        d = np.asarray(depth, dtype=np.int64)
        e = np.asarray(exits, dtype=np.int64)
        f = np.broadcast_to(np.asarray(controller_flops, dtype=np.float64), d.shape).copy()
        return cls(depth=d, exits=e, controller_flops=f, cost=cm.cost(d, e, f))


@dataclass
class OnlineState:
    """Per-batch state of the online protocol: created by `start`, passed to `should_stop`.

    `controller_flops` (float64 [n_rows]) accumulates the FLOPs the controller's own rule
    spent on each row so far; the engine reads it when the batch is done.
    """

    n_rows: int
    max_depth: int
    data: dict[str, np.ndarray] = field(default_factory=dict)
    last_depth: int = -1
    controller_flops: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.controller_flops is None:
            self.controller_flops = np.zeros(int(self.n_rows), dtype=np.float64)


@dataclass(frozen=True)
class CalibrationResult:
    """What `calibrate` chose and what it achieved on the calibration trace."""

    budget: float
    knob: float
    mean_cost: float
    feasible_range: tuple[float, float]
    n_samples: int
    n_evaluations: int


class Controller(BaseEstimator):
    """Base class of every depth controller (see the module docstring)."""

    name: ClassVar[str] = ""
    budget_param: ClassVar[str] = ""
    kind: ClassVar[str] = "incremental"  # or "upfront"
    #: Optional StepView parts the controller reads ("hidden", "features"). The engine only
    #: computes these (summaries and side columns cost time); the default is both.
    step_inputs: ClassVar[frozenset[str]] = frozenset({"hidden", "features"})

    # ------------------------------------------------------------------ tuning
    @classmethod
    def search_space(cls, trial: Any, trace: DepthTrace, base: Mapping[str, Any]) -> dict[str, Any] | None:
        """Hyperparameters to try in one Optuna trial (`adaptive-loop tune controller`).

        `trial` suggests values (`trial.suggest_float`, ...); `trace` is the validation trace
        (a search can depend on it, e.g. no hidden summaries); `base` holds the parameters
        the user fixed. Returns constructor parameters; the knob (`budget_param`) is never
        searched, calibration sets it. The default, None, means the controller has nothing
        to tune; a controller with hyperparameters overrides this classmethod.
        """
        return None

    # ------------------------------------------------------------------ cost
    @property
    def flops_per_step(self) -> float:
        """FLOPs of the controller's own rule per visited depth (0 for rules with no computation)."""
        return 0.0

    # ------------------------------------------------------------------ fitting
    def fit(self, trace: DepthTrace, targets: Any = None) -> "Controller":
        """Learn whatever the rule needs from a (validation) trace; returns self."""
        self._validate_params()
        self.max_depth_ = int(trace.max_depth)
        self.n_samples_fit_ = int(trace.n_samples)
        self._fit(trace, targets)
        return self

    def _fit(self, trace: DepthTrace, targets: Any) -> None:
        """Hook for subclasses that learn from the trace."""

    def _validate_params(self) -> None:
        """Hook: raise ConfigError for invalid constructor values."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "max_depth_"):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit(trace) on a validation trace before "
                f"decide, should_stop, calibrate or evaluate"
            )

    def _check_trace(self, trace: DepthTrace) -> None:
        self._check_fitted()
        if trace.max_depth != self.max_depth_:
            raise TraceError(
                f"{type(self).__name__} was fitted on a trace with K={self.max_depth_} but got one with "
                f"K={trace.max_depth} ({trace.meta.dataset or 'trace'}/{trace.meta.split or '?'}); fit it on a trace of the same depth"
            )

    # ------------------------------------------------------------------ deciding
    def decide(self, trace: DepthTrace) -> ControllerDecision:
        """Offline decisions for every sample of a trace."""
        raise NotImplementedError

    def start(self, n_rows: int, max_depth: int | None = None) -> OnlineState:
        """Begin the online protocol for a batch of `n_rows` rows."""
        self._check_fitted()
        k = self.max_depth_ if max_depth is None else int(max_depth)
        state = OnlineState(n_rows=int(n_rows), max_depth=k, data=self._new_state(int(n_rows)))
        self._online_state = state
        return state

    def _new_state(self, n_rows: int) -> dict[str, np.ndarray]:
        return {}

    def should_stop(self, step: StepView, state: OnlineState | None = None) -> np.ndarray:
        """Bool mask over `step.row_index`: True = stop now and use this depth's prediction."""
        raise NotImplementedError

    def decide_upfront_with_flops(self, step: StepView) -> tuple[np.ndarray, np.ndarray]:
        """Up-front controllers: (depth [m], controller FLOPs [m]) for the rows of a depth-0 view.

        The default returns `decide_upfront` with zero FLOPs, which is right for rules that
        compute nothing per row (fixed depth); controllers that run a predictor override it
        so the engine can charge what ran.
        """
        depth = np.asarray(self.decide_upfront(step), dtype=np.int64)  # type: ignore[attr-defined]
        return depth, np.zeros(step.n_rows, dtype=np.float64)

    def _online(self, step: StepView, state: OnlineState | None) -> OnlineState:
        """Validate an online call and return the state it belongs to."""
        self._check_fitted()
        if state is None:
            state = getattr(self, "_online_state", None)
            if state is None:
                raise NotFittedError(f"{type(self).__name__}: call start(n_rows) before should_stop")
        if not 0 <= step.depth <= state.max_depth:
            raise ValueError(f"{type(self).__name__}: step depth {step.depth} outside 0..{state.max_depth}")
        if step.row_index.size and (step.row_index.min() < 0 or step.row_index.max() >= state.n_rows):
            raise ValueError(f"{type(self).__name__}: row_index outside the {state.n_rows} rows given to start")
        state.last_depth = step.depth
        return state

    # ------------------------------------------------------------------ budget knob
    def _knob_candidates(self, trace: DepthTrace) -> np.ndarray | None:
        """Every knob value at which the mean cost can change, sorted cheapest first (or None)."""
        return None

    def _knob_bounds(self, trace: DepthTrace) -> tuple[float, float]:
        """(cheapest, most expensive) knob values for bisection when there are no candidates."""
        raise NotImplementedError

    def _cast_knob(self, value: Any) -> Any:
        return float(value)

    @contextlib.contextmanager
    def knob_set_to(self, value: Any) -> Iterator[None]:
        """Context manager: the budget knob at `value` inside the block, restored after."""
        old = getattr(self, self.budget_param)
        self.set_params(**{self.budget_param: self._cast_knob(value)})
        try:
            yield
        finally:
            self.set_params(**{self.budget_param: old})

    def mean_cost_at(self, trace: DepthTrace, value: Any) -> float:
        """Mean cost on `trace` with the knob at `value` (the knob is restored afterwards)."""
        with self.knob_set_to(value):
            return self.decide(trace).mean_cost

    def _ends(self, trace: DepthTrace) -> tuple[Any, Any]:
        cands = self._knob_candidates(trace)
        if cands is not None:
            return cands[0], cands[-1]
        return self._knob_bounds(trace)

    def cost_range(self, trace: DepthTrace) -> tuple[float, float]:
        """(cheapest, most expensive) mean cost the knob can reach on `trace`."""
        self._check_trace(trace)
        cheap, expensive = self._ends(trace)
        return self.mean_cost_at(trace, cheap), self.mean_cost_at(trace, expensive)

    def knob_grid(self, trace: DepthTrace, n_points: int = 50) -> np.ndarray:
        """Up to `n_points` knob values from the most conservative (expensive) to the most aggressive."""
        self._check_trace(trace)
        cands = self._knob_candidates(trace)
        if cands is not None:
            idx = np.unique(np.round(np.linspace(0, cands.size - 1, max(2, n_points))).astype(np.int64))
            return cands[idx][::-1]
        cheap, expensive = self._knob_bounds(trace)
        return np.linspace(expensive, cheap, max(2, n_points))

    def calibrate(self, trace: DepthTrace, budget: float) -> "Controller":
        """Set the budget knob to the most expensive setting whose mean cost on `trace` is <= budget.

        Exact search over sorted candidate knob values when the controller lists them,
        otherwise bisection over the (monotone) knob. Raises `BudgetError` naming the
        feasible range when the budget cannot be met.
        """
        self._check_trace(trace)
        lo, hi = self.cost_range(trace)
        slack = 1e-9 * max(abs(hi), 1.0)
        if not np.isfinite(budget) or budget < lo - slack or budget > hi + slack:
            raise BudgetError(
                f"{type(self).__name__}: budget {budget:.6g} FLOPs/sample is outside the range this controller "
                f"reaches on the calibration trace ({trace.n_samples} samples): [{lo:.6g}, {hi:.6g}]"
            )
        evaluations = 0
        cands = self._knob_candidates(trace)
        if cands is not None:
            lo_i, hi_i = 0, cands.size - 1
            if self.mean_cost_at(trace, cands[hi_i]) <= budget + slack:
                best = cands[hi_i]
            else:
                while hi_i - lo_i > 1:
                    mid = (lo_i + hi_i) // 2
                    evaluations += 1
                    if self.mean_cost_at(trace, cands[mid]) <= budget + slack:
                        lo_i = mid
                    else:
                        hi_i = mid
                best = cands[lo_i]
        else:
            cheap, expensive = self._knob_bounds(trace)
            if self.mean_cost_at(trace, expensive) <= budget + slack:
                best = expensive
            else:
                for _ in range(_BISECTION_STEPS):
                    mid = 0.5 * (cheap + expensive)
                    if mid in (cheap, expensive):
                        break
                    evaluations += 1
                    if self.mean_cost_at(trace, mid) <= budget + slack:
                        cheap = mid
                    else:
                        expensive = mid
                best = cheap
        self.set_params(**{self.budget_param: self._cast_knob(best)})
        self.calibration_ = CalibrationResult(
            budget=float(budget),
            knob=float(best),
            mean_cost=self.decide(trace).mean_cost,
            feasible_range=(lo, hi),
            n_samples=trace.n_samples,
            n_evaluations=evaluations + 2,
        )
        return self

    @property
    def knob(self) -> Any:
        """Current value of the budget knob."""
        return getattr(self, self.budget_param)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_score_cache", None)
        state.pop("_online_state", None)
        return state


def check_choice(owner: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise ConfigError unless `value` is one of `choices`."""
    if value not in choices:
        raise ConfigError(f"{owner}: {name}={value!r} is not one of {list(choices)}")
