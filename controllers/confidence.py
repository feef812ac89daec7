"""Confidence threshold: stop once the prediction is confident (DeeBERT, FastBERT, CALM).

Confidence at a depth, in [0, 1]:
- `criterion="margin"`: |2p - 1| = 2 |p - 0.5| (softmax response for a binary output);
- `criterion="entropy"`: 1 - H(p) / ln 2 with H the Bernoulli entropy.

A row stops at the first depth whose confidence is >= its threshold. Thresholds are
- global (`per_depth=False`): `threshold` itself at every depth; the knob is a confidence;
- per depth (`per_depth=True`): `threshold` is a quantile level q in [0, 1] and the
  threshold at depth t is the q-quantile of depth-t confidence on the fit trace, so the same
  share of rows would pass at every depth even though confidence drifts with depth
  (MSDNet-style); q = 1 means never stop early.
Both knobs cost more as they grow.

FLOPs per step (each add/mul/compare/abs = 1 FLOP, exp/log = 8): sigmoid 10, margin 3 more
and the compare (14 in all); entropy: sigmoid 10, two softplus terms 2 x 10, the weighted
sum and scaling 5, compare 1 (36 in all).
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

FLOPS_MARGIN = 14.0
FLOPS_ENTROPY = 36.0
_QUANTILE_LEVELS = np.linspace(0.0, 1.0, 2001)


def confidence(logits: np.ndarray, criterion: str) -> np.ndarray:
    """Confidence in [0, 1] of Bernoulli predictions given as logits (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    p = sigmoid(z)
    if criterion == "margin":
        return np.abs(2.0 * p - 1.0)
    entropy = p * softplus(-z) + (1.0 - p) * softplus(z)
    return np.clip(1.0 - entropy / np.log(2.0), 0.0, 1.0)


@register_controller
class ConfidenceThreshold(IncrementalController):
    """Stop at the first depth whose confidence reaches the threshold."""

    name: ClassVar[str] = "confidence"
    budget_param: ClassVar[str] = "threshold"
    stop_if: ClassVar[str] = "ge"
    step_inputs: ClassVar[frozenset[str]] = frozenset()  # logits only

    def __init__(self, threshold: float = 0.8, criterion: str = "margin", per_depth: bool = False) -> None:
        self.threshold = threshold
        self.criterion = criterion
        self.per_depth = per_depth

    @property
    def flops_per_step(self) -> float:
        return FLOPS_MARGIN if self.criterion == "margin" else FLOPS_ENTROPY

    @classmethod
    def search_space(cls, trial: Any, trace: DepthTrace, base: Mapping[str, Any]) -> dict[str, Any]:
        """The confidence measure and whether thresholds are per-depth quantiles."""
        return {
            "criterion": trial.suggest_categorical("criterion", ["margin", "entropy"]),
            "per_depth": trial.suggest_categorical("per_depth", [False, True]),
        }

    def _validate_params(self) -> None:
        check_choice("ConfidenceThreshold", "criterion", self.criterion, ("margin", "entropy"))
        if not np.isfinite(float(self.threshold)):
            raise ConfigError(f"ConfidenceThreshold: threshold must be finite, got {self.threshold!r}")
        if self.per_depth and not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(
                f"ConfidenceThreshold: with per_depth=True the threshold is a quantile level in [0, 1], got {self.threshold!r}"
            )

    def _fit(self, trace: DepthTrace, targets: object) -> None:
        if self.per_depth:
            conf = np.stack([confidence(np.ascontiguousarray(trace.logits[:, t]), self.criterion)
                             for t in range(trace.n_depths)], axis=0)
            self.depth_quantiles_ = np.quantile(conf, _QUANTILE_LEVELS, axis=1).T  # [K+1, levels]
            self.fitted_criterion_ = self.criterion

    def _score(self, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        return confidence(step.logits, self.criterion)

    def _thresholds(self, n_depths: int) -> np.ndarray:
        q = float(self.threshold)
        if not self.per_depth:
            return np.full(n_depths, q)
        if getattr(self, "fitted_criterion_", None) != self.criterion:
            raise ConfigError("ConfidenceThreshold: per-depth quantiles were fitted for another criterion; call fit again")
        if q >= 1.0:
            return np.full(n_depths, np.inf)
        return np.array([np.interp(q, _QUANTILE_LEVELS, self.depth_quantiles_[t]) for t in range(n_depths)])

    def _knob_candidates(self, trace: DepthTrace) -> np.ndarray | None:
        return None if self.per_depth else super()._knob_candidates(trace)

    def _knob_bounds(self, trace: DepthTrace) -> tuple[float, float]:
        return 0.0, 1.0
