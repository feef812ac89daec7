"""The demo's verdict on data with a known needed depth: does depth help the rows that need it,
and does an adaptive controller spend it there?

From the validation and test depth traces of a run on the synthetic data (whose rows carry
`needed_depth` and the generator's `true_prob`), `summarize_demo` measures on the test split:

- `test_auc` (at the trained depth L) against `bayes_auc` (AUC of the true probabilities);
- `regime_auc`: the AUC of every needed-depth regime at every inference depth;
- `oracle_headroom`: the label oracle over depths minus the best fixed depth;
- `needed_depth_policy`: every row answered at its own needed depth (known upfront, so one
  Exit), its AUC and mean FLOPs and the fixed-depth frontier's AUC at that mean cost;
- `controller`: one adaptive controller fitted and calibrated on the validation trace only,
  to the needed-depth policy's validation mean cost, scored on test against the frontier
  at its own mean cost, with a 95% paired bootstrap interval of the difference (against the
  seeded random mixture of fixed depths that realises that cost), the share of the
  needed-depth policy's gain it captures and the Spearman correlation of its depths with
  `needed_depth`.

The controller is a LightGBM ranking of per-depth gains (`controllers.learned.lgbm_depth`,
`target=gain, gain_target=rank`), fitted on the validation trace's label-free inputs: the
per-depth logits, hidden summaries and side columns such as `slot`. `needed_depth` and
`true_prob`, which the trace also carries, are ground truth that `controllers.learned.features`
never hands to a controller. A confidence threshold cannot do this job here: a row's depth-0
confidence does not say whether its answer is still one referral link away, and calibrated to
the policy's cost it lost to the frontier (95% interval [-0.010, -0.005] in the demo run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from adaptive_loop.errors import ConfigError
from adaptive_loop.harness.bootstrap import controller_vs_frontier_ci
from adaptive_loop.harness.comparison import ControllerSpec
from adaptive_loop.harness.curves import fixed_frontier
from adaptive_loop.metrics import auc
from adaptive_loop.regimes import regime_auc
from adaptive_loop.trace import DepthTrace
from controllers.base import ControllerDecision
from controllers.registry import make_controller
from oracle import headroom_table

DEMO_CONTROLLER = "lgbm_depth:target=gain,gain_target=rank"  # a controller spec (`ControllerSpec.parse`)

NEEDED = "needed_depth"
TRUE_PROB = "true_prob"


@dataclass(frozen=True)
class PolicyScore:
    """A per-row depth policy on the test split next to the fixed-depth frontier at its mean cost."""

    auc: float
    mean_flops: float
    frontier_auc: float


@dataclass(frozen=True)
class ControllerScore:
    """The calibrated controller on the test split (see the module docstring)."""

    name: str
    params: dict[str, Any]
    auc: float
    mean_flops: float
    frontier_auc: float
    ci_low: float
    ci_high: float
    captured: float
    needed_depth_spearman: float
    depth_counts: list[int]


@dataclass(frozen=True)
class DemoSummary:
    """Everything `demo_summary.json` holds."""

    test_auc: float
    bayes_auc: float
    train_loops: int
    regime_auc: dict[str, list[float]]
    regime_bayes_auc: dict[str, float]
    oracle_headroom: float
    needed_depth_policy: PolicyScore
    controller: ControllerScore

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def to_text(self) -> str:
        """A few lines for the console."""
        n_depths = len(next(iter(self.regime_auc.values())))
        head = "needed_depth  bayes  " + " ".join(f"{'d' + str(d):>6}" for d in range(n_depths))
        lines = [f"test AUC {self.test_auc:.4f} at depth {self.train_loops}; Bayes AUC {self.bayes_auc:.4f}", head]
        for key, aucs in self.regime_auc.items():
            lines.append(f"{key:>12}  {self.regime_bayes_auc[key]:.3f}  " + " ".join(f"{a:6.3f}" for a in aucs))
        p, c = self.needed_depth_policy, self.controller
        lines += [
            f"oracle headroom (label oracle - best fixed depth): {self.oracle_headroom:+.4f} AUC",
            f"needed-depth policy: AUC {p.auc:.4f} at {p.mean_flops:,.0f} FLOPs/sample; fixed frontier there {p.frontier_auc:.4f}",
            f"controller {c.name}: AUC {c.auc:.4f} at {c.mean_flops:,.0f} FLOPs/sample; frontier {c.frontier_auc:.4f}; "
            f"gain 95% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}]; captured {c.captured:.2f} of the needed-depth policy's gain; "
            f"Spearman with needed_depth {c.needed_depth_spearman:.3f}",
        ]
        return "\n".join(lines)


def needed_depth_decision(trace: DepthTrace) -> ControllerDecision:
    """Every row at its `needed_depth` (capped at the trace's depth), one Exit per row."""
    needed = _feature(trace, NEEDED).astype(np.int64)
    depth = np.minimum(needed, trace.max_depth)
    return ControllerDecision.from_depths(trace, depth, np.ones_like(depth))


def summarize_demo(
    valid: DepthTrace,
    test: DepthTrace,
    train_loops: int,
    controller: str = DEMO_CONTROLLER,
    controller_params: dict[str, Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> DemoSummary:
    """The demo summary of a run from its validation and test traces (see the module docstring).

    `controller` is a spec, `name` or `name:key=value,...` (`ControllerSpec.parse`);
    `controller_params` add to or override its parameters.
    """
    labels = test.labels
    needed = _feature(test, NEEDED).astype(np.int64)
    true_prob = _feature(test, TRUE_PROB)
    regimes = regime_auc(labels, test.logits, needed, true_prob)
    by_regime = {str(r.regime): r for r in regimes if r.regime is not None}

    frontier = fixed_frontier(test)
    policy = needed_depth_decision(test)
    policy_auc = auc(labels, policy.logits(test))
    policy_frontier = float(frontier.auc_at(policy.mean_cost))

    spec = ControllerSpec.parse(controller)
    ctrl = make_controller(spec.name, **{**spec.params, **(controller_params or {})}).fit(valid)
    ctrl.calibrate(valid, needed_depth_decision(valid).mean_cost)
    decision = ctrl.decide(test)
    ctrl_auc = auc(labels, decision.logits(test))
    ctrl_frontier = float(frontier.auc_at(decision.mean_cost))
    ci = controller_vs_frontier_ci(decision, test, frontier, n_resamples=n_resamples, seed=seed)
    policy_gain = policy_auc - policy_frontier
    captured = (ctrl_auc - ctrl_frontier) / policy_gain if policy_gain > 0 else float("nan")
    rho = float(spearmanr(decision.depth, needed).statistic) if np.ptp(decision.depth) > 0 else float("nan")

    return DemoSummary(
        test_auc=auc(labels, test.logits[:, min(train_loops, test.max_depth)]),
        bayes_auc=auc(labels, true_prob),
        train_loops=int(train_loops),
        regime_auc={k: [float(a) for a in r.depth_auc] for k, r in by_regime.items()},
        regime_bayes_auc={k: float(r.bayes_auc) for k, r in by_regime.items()},
        oracle_headroom=float(headroom_table(test).gap),
        needed_depth_policy=PolicyScore(policy_auc, policy.mean_cost, policy_frontier),
        controller=ControllerScore(
            name=spec.name,
            params={k: _plain(v) for k, v in ctrl.get_params().items()},
            auc=ctrl_auc,
            mean_flops=decision.mean_cost,
            frontier_auc=ctrl_frontier,
            ci_low=ci.low,
            ci_high=ci.high,
            captured=float(captured),
            needed_depth_spearman=rho,
            depth_counts=np.bincount(decision.depth, minlength=test.n_depths).astype(int).tolist(),
        ),
    )


def _feature(trace: DepthTrace, name: str) -> np.ndarray:
    if name not in trace.features:
        raise ConfigError(
            f"the trace has no {name!r} column; the demo summary needs the synthetic dataset's ground truth "
            f"(columns: {', '.join(sorted(trace.features)) or 'none'})"
        )
    return np.asarray(trace.features[name])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
