"""Compare several controllers at the same budgets: fit and calibrate on validation, report on test.

This is the protocol every controller benchmark follows, kept in one place so results of
different controllers are comparable:

1. each controller is fitted on the validation trace;
2. its one knob is calibrated on the validation trace so the mean cost meets the budget
   (budgets are given as the cost of a fixed depth, e.g. 1.0 = Entry + 1 Loop + 1 Exit);
3. on the test trace: AUC, logloss, mean cost, headroom captured against the fixed-depth
   frontier at the controller's realised cost, and a paired bootstrap interval of the AUC
   difference to the random mixture of fixed depths with the same mean cost;
4. a knob sweep on test gives each controller's AUC-vs-FLOPs curve.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from sklearn.base import clone
from tqdm.auto import tqdm

from adaptive_loop.config_loading import parse_scalar
from adaptive_loop.cost import CostModel
from adaptive_loop.errors import BudgetError
from adaptive_loop.harness.bootstrap import controller_vs_frontier_ci
from adaptive_loop.harness.controller_report import evaluate
from adaptive_loop.harness.curves import Curve, FixedFrontier, excess_share, fixed_frontier, headroom_captured, sweep
from adaptive_loop.trace import DepthTrace
from controllers.registry import make_controller
from controllers.risk import disagreement, risk_calibrate
from oracle.budgeted import BudgetedOracleCurve, budgeted_oracle_curve
from oracle.headroom import HeadroomTable, headroom_table


@dataclass(frozen=True)
class ControllerSpec:
    """A controller by registry name and constructor parameters, with a display label."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({extra})" if extra else self.name

    @classmethod
    def parse(cls, text: str) -> "ControllerSpec":
        """`name` or `name:key=value,key=value` (values parsed by `parse_scalar`: bool, None, int, float or string)."""
        name, _, rest = text.partition(":")
        params: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"controller spec {text!r}: expected key=value, got {item!r}")
            params[key.strip()] = parse_scalar(raw.strip())
        return cls(name.strip(), params)


@dataclass(frozen=True)
class BudgetResult:
    """One controller at one budget, calibrated on validation and measured on test."""

    controller: str
    budget_depth: float
    budget_flops: float
    knob: float
    auc: float
    logloss: float
    mean_cost: float
    mean_depth: float
    frontier_auc: float
    mixture_auc: float
    headroom_captured: float
    headroom_captured_mixture: float
    diff_vs_mixture: float
    diff_low: float
    diff_high: float
    depth_histogram: list[int]
    status: str = "ok"  # or why the budget could not be met (e.g. below the controller's minimum cost)

    @classmethod
    def infeasible(cls, controller: str, budget_depth: float, budget_flops: float, reason: str) -> "BudgetResult":
        """A result for a budget the controller could not meet: every metric NaN, `status` = `reason`."""
        nan = float("nan")
        return cls(controller, budget_depth, budget_flops, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                   nan, [], status=reason)


@dataclass(frozen=True)
class RiskResult:
    """A controller whose knob was chosen by Learn-then-Test on valid, with the realised risk on test."""

    controller: str
    epsilon: float
    delta: float
    alpha: float
    certified: bool
    knob: float
    calibration_risk: float
    test_risk: float  # realised rate of |p_early - p_full| > epsilon on the test split
    test_auc: float
    test_mean_cost: float
    full_depth_cost: float


def risk_controlled(
    valid: DepthTrace, test: DepthTrace, spec: ControllerSpec, epsilon: float = 0.02, delta: float = 0.1,
    alpha: float = 0.1,
) -> RiskResult:
    """Fit on valid, choose the knob by Learn-then-Test on valid, measure the realised risk on test."""
    controller = make_controller(spec.name, **spec.params).fit(valid)
    calibration = risk_calibrate(controller, valid, epsilon=epsilon, delta=delta, alpha=alpha)
    report = evaluate(controller, test)
    return RiskResult(
        controller=spec.display, epsilon=epsilon, delta=delta, alpha=alpha, certified=calibration.certified,
        knob=calibration.knob, calibration_risk=calibration.calibration_risk,
        test_risk=float(disagreement(controller, test, epsilon).mean()), test_auc=report.auc,
        test_mean_cost=report.mean_cost, full_depth_cost=float(CostModel.from_trace(test).fixed_depth(test.max_depth)),
    )


@dataclass
class Comparison:
    """Everything a controller comparison on one dataset produced."""

    dataset: str
    headroom: HeadroomTable
    frontier: FixedFrontier
    oracle_curve: BudgetedOracleCurve
    results: list[BudgetResult]
    curves: list[Curve]
    risk: list[RiskResult] = field(default_factory=list)
    excess: float | None = None  # excess headroom over the null (`oracle.excess`), when it was measured

    def captured_of_excess(self, result: BudgetResult) -> float:
        """`result`'s gain over the fixed frontier as a share of the excess headroom (NaN without one)."""
        return excess_share(result.auc, result.frontier_auc, self.excess)

    def to_dict(self) -> dict[str, Any]:
        """Everything as a JSON-ready dict.

        Headroom, excess headroom, fixed frontier, budgeted oracle, per-budget results (with
        their share of the excess), curves, risk-controlled knobs.
        """
        return {
            "dataset": self.dataset,
            "headroom": self.headroom.to_dict(),
            "excess_headroom": self.excess,
            "fixed_frontier": self.frontier.to_dict(),
            "budgeted_oracle": self.oracle_curve.to_dict(),
            "results": [{**asdict(r), "captured_of_excess": self.captured_of_excess(r)} for r in self.results],
            "curves": [c.to_dict() for c in self.curves],
            "risk_controlled": [asdict(r) for r in self.risk],
        }

    def to_markdown(self) -> str:
        """Markdown tables of the comparison.

        Per controller and budget: test AUC, mean cost, frontier AUC, headroom captured (of the
        oracle headroom, and of the excess headroom when it is known) and the AUC difference to
        the random mixture with its interval; then the risk-controlled knobs.
        """
        with_excess = self.excess is not None
        lines = [f"### {self.dataset}: controllers calibrated on valid, measured on test", ""]
        if with_excess:
            lines += [f"Excess headroom (oracle headroom minus the null's): {self.excess:+.5f}.", ""]
        lines += [
            "| controller | budget (depth) | AUC | mean cost (FLOPs) | frontier AUC | captured"
            + (" | captured of excess" if with_excess else "") + " | AUC - mixture [95% CI] |",
            "|---|---|---|---|---|---|" + ("---|" if with_excess else "") + "---|",
        ]
        for r in self.results:
            if r.status != "ok":
                dashes = "- | " * (5 if with_excess else 4)
                lines.append(f"| {r.controller} | {r.budget_depth:g} | {dashes}infeasible: {r.status} |")
                continue
            share = self.captured_of_excess(r)
            of_excess = (f" | {share:+.3f}" if math.isfinite(share) else " | - (excess <= 0)") if with_excess else ""
            lines.append(
                f"| {r.controller} | {r.budget_depth:g} | {r.auc:.5f} | {r.mean_cost:,.0f} | {r.frontier_auc:.5f} "
                f"| {r.headroom_captured:+.3f}{of_excess} | {r.diff_vs_mixture:+.5f} [{r.diff_low:+.5f}, {r.diff_high:+.5f}] |"
            )
        if self.risk:
            lines += [
                "",
                "Risk-controlled knobs (Learn-then-Test on valid; risk = share of samples with |p_early - p_full| > eps):",
                "",
                "| controller | eps | guarantee: risk <= delta w.p. >= 1 - alpha | certified | valid risk | test risk | test AUC | test cost / full depth |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in self.risk:
                lines.append(
                    f"| {r.controller} | {r.epsilon:g} | delta={r.delta:g}, alpha={r.alpha:g} | {r.certified} "
                    f"| {r.calibration_risk:.4f} | {r.test_risk:.4f} | {r.test_auc:.5f} | {r.test_mean_cost / r.full_depth_cost:.3f} |"
                )
        return "\n".join(lines) + "\n"


def compare_controllers(
    valid: DepthTrace,
    test: DepthTrace,
    specs: Sequence[ControllerSpec],
    budget_depths: Sequence[float] = (1.0, 2.0),
    n_bootstrap: int = 1000,
    curve_points: int = 30,
    seed: int = 0,
    dataset: str = "",
    progress: bool = True,
    risk: tuple[float, float, float] | None = (0.02, 0.1, 0.1),
    excess: float | None = None,
) -> Comparison:
    """Run the protocol in the module docstring for every spec and budget.

    `risk` = (epsilon, delta, alpha) also calibrates each controller by Learn-then-Test
    (`controllers.risk`) and reports the realised test risk beside the guarantee; None skips it.
    `excess` (the test trace's excess headroom over a null, from `oracle.excess`) adds each
    result's share of it beside its share of the oracle headroom.
    """
    cost_model = CostModel.from_trace(valid)
    table = headroom_table(test)
    frontier = fixed_frontier(test)
    results: list[BudgetResult] = []
    curves: list[Curve] = []
    jobs = [(spec, depth) for spec in specs for depth in budget_depths]
    fitted: dict[str, Any] = {}
    for spec, depth in tqdm(jobs, desc="controllers x budgets", disable=not progress):
        if spec.display not in fitted:
            fitted[spec.display] = make_controller(spec.name, **spec.params).fit(valid)
        controller = clone(fitted[spec.display]).fit(valid)
        budget = float(cost_model.fixed_depth(depth))  # fractional depths interpolate linearly
        try:
            controller.calibrate(valid, budget)
        except BudgetError as exc:
            low, _ = controller.cost_range(valid)
            reason = f"cheapest setting costs {low:,.0f} FLOPs/sample" if low > budget else str(exc)
            results.append(BudgetResult.infeasible(spec.display, float(depth), budget, reason))
            continue
        decision = controller.decide(test)
        report = evaluate(controller, test, decision)
        captured = headroom_captured(report.auc, report.mean_cost, test, table.oracle.auc, frontier, seed=seed)
        ci = controller_vs_frontier_ci(decision, test, frontier, n_resamples=n_bootstrap, seed=seed)
        results.append(
            BudgetResult(
                controller=spec.display, budget_depth=float(depth), budget_flops=budget, knob=float(controller.knob),
                auc=report.auc, logloss=report.logloss, mean_cost=report.mean_cost, mean_depth=report.mean_depth,
                frontier_auc=captured.frontier_auc, mixture_auc=captured.mixture_auc,
                headroom_captured=captured.captured, headroom_captured_mixture=captured.captured_mixture,
                diff_vs_mixture=ci.estimate, diff_low=ci.low, diff_high=ci.high,
                depth_histogram=report.depth_histogram,
            )
        )
    for spec in specs:
        curve = sweep(fitted[spec.display], test, n_points=curve_points)
        curves.append(Curve(spec.display, curve.knob_name, curve.knobs, curve.costs, curve.aucs, curve.loglosses))
    oracle_curve = budgeted_oracle_curve(test, n_points=max(curve_points, 11))
    risks = [] if risk is None else [risk_controlled(valid, test, spec, *risk) for spec in specs]
    return Comparison(dataset or test.meta.dataset, table, frontier, oracle_curve, results, curves, risks, excess)
