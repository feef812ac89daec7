"""Risk-controlled calibration: early predictions that rarely stray from full depth.

The risk of a knob setting is the rate of samples whose early prediction differs from the
full-depth one by more than epsilon: `R = P(|p_early - p_full| > eps)`. Learn-then-Test
(Angelopoulos et al. 2021), as CALM uses it, picks the knob on a calibration split so that
`R <= delta` holds with probability at least `1 - alpha` over the draw of that split:

1. order the knob values from conservative (expensive) to aggressive (cheap);
2. for each, test H0: R > delta with a valid p-value from the calibration losses:
   exact binomial tail `P(Binom(n, delta) <= k)` (k = violations), or Hoeffding-Bentkus;
3. fixed-sequence testing: walk the order and stop at the first value not rejected at level
   alpha; the last rejected value is chosen (family-wise error <= alpha, no correction
   needed because the order is fixed before looking at the data).

AUC is not a per-sample loss and is not controlled here: report it beside the risk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.stats import binom

from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import sigmoid
from adaptive_loop.trace import DepthTrace
from controllers.base import Controller


def disagreement(controller: Controller, trace: DepthTrace, epsilon: float) -> np.ndarray:
    """Per-sample loss: True where |p_early - p_full| > epsilon (bool [n])."""
    decision = controller.decide(trace)
    p_early = sigmoid(decision.logits(trace))
    p_full = sigmoid(trace.logits[:, trace.max_depth])
    return np.abs(p_early - p_full) > epsilon


def binomial_p_value(violations: int, n: int, delta: float) -> float:
    """P(Binom(n, delta) <= violations): valid p-value for H0: risk > delta."""
    return float(binom.cdf(violations, n, delta))


def hoeffding_bentkus_p_value(violations: int, n: int, delta: float) -> float:
    """Hoeffding-Bentkus p-value for H0: risk > delta (Bates et al. 2021)."""
    r = violations / n
    a = min(r, delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        h1 = (a * np.log(a / delta) if a > 0 else 0.0) + (
            (1 - a) * np.log((1 - a) / (1 - delta)) if a < 1 else 0.0
        )
    hoeffding = float(np.exp(-n * h1))
    bentkus = float(np.e * binom.cdf(np.ceil(n * r), n, delta))
    return min(hoeffding, bentkus, 1.0)


_P_VALUES = {"binomial": binomial_p_value, "hoeffding_bentkus": hoeffding_bentkus_p_value}


@dataclass(frozen=True)
class RiskCheck:
    """Realised risk on a held-out split next to the guarantee."""

    realised_rate: float
    delta: float
    within_delta: bool
    mean_cost: float
    n_samples: int


@dataclass
class RiskCalibration:
    """The knob chosen by Learn-then-Test and what it guarantees.

    `certified` is False when even the most conservative knob value could not be shown to
    meet delta; the controller is then left at that most conservative value.
    """

    controller: str
    knob_name: str
    knob: float
    epsilon: float
    delta: float
    alpha: float
    method: str
    n_calibration: int
    calibration_risk: float
    p_value: float
    calibration_mean_cost: float
    certified: bool
    tested: list[dict[str, float]] = field(default_factory=list)

    @property
    def guarantee(self) -> str:
        if not self.certified:
            return f"none: no knob value passed the test at alpha={self.alpha}"
        return (
            f"P(rate of |p_early - p_full| > {self.epsilon:g} <= {self.delta:g}) >= {1 - self.alpha:g} "
            f"over draws of the {self.n_calibration}-sample calibration split"
        )

    def check(self, controller: Controller, trace: DepthTrace) -> RiskCheck:
        """Realised violation rate of `controller` (at the chosen knob) on a test split."""
        with controller.knob_set_to(self.knob):
            losses = disagreement(controller, trace, self.epsilon)
            cost = controller.decide(trace).mean_cost
        rate = float(losses.mean()) if losses.size else float("nan")
        return RiskCheck(rate, self.delta, bool(rate <= self.delta), cost, trace.n_samples)

    def to_dict(self) -> dict[str, Any]:
        """The calibration as a JSON-ready dict, with the `guarantee` sentence added."""
        out = asdict(self)
        out["guarantee"] = self.guarantee
        return out


def risk_calibrate(
    controller: Controller,
    trace: DepthTrace,
    epsilon: float = 0.05,
    delta: float = 0.1,
    alpha: float = 0.1,
    method: str = "binomial",
    n_points: int = 50,
    grid: Sequence[float] | np.ndarray | None = None,
) -> RiskCalibration:
    """Choose the controller's knob on `trace` by Learn-then-Test and set it.

    Args:
        controller: a fitted controller.
        trace: calibration split (not the test split).
        epsilon: tolerated |p_early - p_full| per sample.
        delta: tolerated violation rate.
        alpha: allowed probability that the chosen knob's true rate exceeds delta.
        method: "binomial" (exact tail) or "hoeffding_bentkus".
        n_points: knob values tested when `grid` is not given (`controller.knob_grid`).
        grid: knob values ordered from conservative to aggressive.
    """
    if method not in _P_VALUES:
        raise ConfigError(f"risk method {method!r} is not one of {sorted(_P_VALUES)}")
    for name, value in (("delta", delta), ("alpha", alpha)):
        if not 0.0 < value < 1.0:
            raise ConfigError(f"risk calibration: {name} must lie in (0, 1), got {value}")
    if not epsilon >= 0:
        raise ConfigError(f"risk calibration: epsilon must be >= 0, got {epsilon}")
    values = controller.knob_grid(trace, n_points) if grid is None else np.asarray(grid)
    p_value_fn = _P_VALUES[method]
    n = trace.n_samples
    tested: list[dict[str, float]] = []
    chosen: int | None = None
    for j, value in enumerate(values):
        with controller.knob_set_to(value):
            k = int(disagreement(controller, trace, epsilon).sum())
        p = p_value_fn(k, n, delta)
        tested.append({"knob": float(value), "risk": k / n, "p_value": p})
        if p > alpha:
            break
        chosen = j
    certified = chosen is not None
    index = chosen if chosen is not None else 0
    controller.set_params(**{controller.budget_param: controller._cast_knob(values[index])})
    return RiskCalibration(
        controller=type(controller).__name__,
        knob_name=controller.budget_param,
        knob=float(values[index]),
        epsilon=float(epsilon),
        delta=float(delta),
        alpha=float(alpha),
        method=method,
        n_calibration=n,
        calibration_risk=tested[index]["risk"],
        p_value=tested[index]["p_value"],
        calibration_mean_cost=controller.decide(trace).mean_cost,
        certified=certified,
        tested=tested,
    )
