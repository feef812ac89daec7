"""Stability / patience: stop once consecutive depths agree (PABEE, Huginn, CALM).

The change between depth t-1 and t is, by `criterion`:
- `"delta_p"`: |p_t - p_{t-1}|;
- `"delta_logit"`: |z_t - z_{t-1}|;
- `"kl"`: KL(Bern(p_t) || Bern(p_{t-1})), computed from logits without clipping.
A row stops at the first depth t where the last `patience` changes were all below `delta`
(so never before depth `patience`). The knob is `delta`: a larger delta stops earlier and
costs less.

FLOPs per step (each add/mul/compare/abs = 1 FLOP, exp/log = 8): delta_p: two sigmoids 20,
difference and abs 2, compare and run update 3 (25); delta_logit: 5; kl: four softplus
terms 40, two sigmoids 20, combination 6, compare and run update 3 (69). Keeping the last
`patience` changes is bookkeeping, not counted.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np

from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import sigmoid, softplus
from adaptive_loop.trace import DepthTrace
from controllers.base import StepView, check_choice
from controllers.incremental import IncrementalController
from controllers.registry import register_controller

FLOPS_PER_STEP = {"delta_p": 25.0, "delta_logit": 5.0, "kl": 69.0}


def bernoulli_kl(z_new: np.ndarray, z_old: np.ndarray) -> np.ndarray:
    """KL(Bern(sigmoid(z_new)) || Bern(sigmoid(z_old))) from logits, >= 0."""
    p = sigmoid(z_new)
    kl = p * (softplus(-z_old) - softplus(-z_new)) + (1.0 - p) * (softplus(z_old) - softplus(z_new))
    return np.maximum(kl, 0.0)


def change(z_new: np.ndarray, z_old: np.ndarray, criterion: str) -> np.ndarray:
    """How much the prediction moved between two depths (float64, >= 0)."""
    if criterion == "delta_p":
        return np.abs(sigmoid(z_new) - sigmoid(z_old))
    if criterion == "delta_logit":
        return np.abs(z_new - z_old)
    return bernoulli_kl(z_new, z_old)


@register_controller
class StabilityPatience(IncrementalController):
    """Stop after `patience` consecutive changes below `delta`."""

    name: ClassVar[str] = "stability"
    budget_param: ClassVar[str] = "delta"
    stop_if: ClassVar[str] = "lt"
    step_inputs: ClassVar[frozenset[str]] = frozenset()  # logits only

    def __init__(self, delta: float = 0.01, patience: int = 1, criterion: str = "delta_p") -> None:
        self.delta = delta
        self.patience = patience
        self.criterion = criterion

    @property
    def flops_per_step(self) -> float:
        return FLOPS_PER_STEP.get(self.criterion, 0.0)

    @classmethod
    def search_space(cls, trial: Any, trace: DepthTrace, base: Mapping[str, Any]) -> dict[str, Any]:
        """How the change between depths is measured, and how many small changes in a row stop."""
        return {
            "criterion": trial.suggest_categorical("criterion", ["delta_p", "delta_logit", "kl"]),
            "patience": trial.suggest_int("patience", 1, 3),
        }

    def _validate_params(self) -> None:
        check_choice("StabilityPatience", "criterion", self.criterion, tuple(FLOPS_PER_STEP))
        if not isinstance(self.patience, (int, np.integer)) or isinstance(self.patience, bool) or self.patience < 1:
            raise ConfigError(f"StabilityPatience: patience must be an integer >= 1, got {self.patience!r}")
        if not float(self.delta) >= 0:
            raise ConfigError(f"StabilityPatience: delta must be >= 0, got {self.delta!r}")

    def _new_state(self, n_rows: int) -> dict[str, np.ndarray]:
        self._validate_params()
        return {
            "prev": np.full(n_rows, np.nan),
            "recent": np.full((n_rows, int(self.patience)), np.inf),
        }

    def _score(self, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        rows = step.row_index
        z = np.asarray(step.logits, dtype=np.float64)
        if step.depth == 0:
            moved = np.full(z.shape, np.inf)
        else:
            moved = change(z, state["prev"][rows], self.criterion)
        state["prev"][rows] = z
        state["recent"][rows, step.depth % int(self.patience)] = moved
        return state["recent"][rows].max(axis=1)

    def _knob_bounds(self, trace: DepthTrace) -> tuple[float, float]:
        """Unused while `_knob_candidates` lists exact breakpoints; kept for subclasses."""
        return float(np.finfo(np.float64).max), 0.0
