"""The controller evaluation harness: honest AUC-vs-FLOPs numbers for depth controllers.

    controller_report.py  `evaluate(controller, trace)` -> `ControllerReport` (AUC, cost, depths)
    curves.py             knob sweeps, the fixed-depth frontier, headroom captured
    bootstrap.py          paired bootstrap intervals of AUC differences
    comparison.py         the fit-on-valid / report-on-test protocol for many controllers
    plots.py              the AUC-vs-FLOPs figure
    online.py             `simulate_online`: drive a controller step by step, like an engine
    controller_tuning.py  Optuna tuning of a controller's own search space

It sits above `controllers/` and `oracle/` (it compares one with the other) and below the
command line and the benchmarks.

Example::

    from adaptive_loop.cost import CostModel
    from adaptive_loop.harness import evaluate, fixed_frontier, sweep
    from adaptive_loop.trace import load_trace
    from controllers import make_controller

    valid, test = load_trace("runs/tiny/trace_valid.parquet"), load_trace("runs/tiny/trace_test.parquet")
    controller = make_controller("confidence").fit(valid)
    controller.calibrate(valid, CostModel.from_trace(valid).fixed_depth(1))
    print(evaluate(controller, test).auc, sweep(controller, test).to_frame(), fixed_frontier(test).kept)
"""

from adaptive_loop.harness.bootstrap import BootstrapCI, controller_vs_frontier_ci, paired_bootstrap_auc_diff
from adaptive_loop.harness.comparison import Comparison, ControllerSpec, compare_controllers
from adaptive_loop.harness.controller_report import ControllerReport, evaluate
from adaptive_loop.harness.curves import (
    Curve,
    FixedFrontier,
    HeadroomCaptured,
    fixed_frontier,
    headroom_captured,
    mixture_auc,
    pareto_front,
    sweep,
)
from adaptive_loop.harness.online import simulate_online
from adaptive_loop.harness.plots import plot_auc_vs_flops

__all__ = [
    "BootstrapCI",
    "Comparison",
    "ControllerReport",
    "ControllerSpec",
    "Curve",
    "FixedFrontier",
    "HeadroomCaptured",
    "compare_controllers",
    "controller_vs_frontier_ci",
    "evaluate",
    "fixed_frontier",
    "headroom_captured",
    "mixture_auc",
    "paired_bootstrap_auc_diff",
    "pareto_front",
    "plot_auc_vs_flops",
    "simulate_online",
    "sweep",
]
