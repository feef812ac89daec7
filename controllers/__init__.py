"""Depth controllers: decide per sample how many loop steps to run, under a FLOPs budget.

Every controller implements `controllers.base.Controller` (offline `decide(trace)`, online
`start`/`should_stop` or `decide_upfront`, one budget knob, `calibrate(trace, budget)`).
Evaluation (`evaluate`, curves, frontier, headroom captured, bootstrap intervals) and
risk-controlled calibration live beside them. Learned controllers (ACT halting head, exit
gate, LightGBM depth predictor, budgeted allocator) use the same interface; `persistence`
saves and loads fitted controllers without pickle and `tuning` tunes them with Optuna.

Main entry points (budgets and costs are FLOPs/sample, priced by `adaptive_loop.cost.CostModel`):

- `make_controller(name, **params)` / `available_controllers()`: fixed, confidence,
  stability, act, exit_gate, lgbm_depth, allocator; `register_controller` adds your own;
- `controller.fit(valid).calibrate(valid, budget)`, then `decide(trace)` -> `ControllerDecision`
  (depth, exits, controller FLOPs and total cost per sample);
- `evaluate(controller, trace)` -> `ControllerReport` (AUC, logloss, cost distribution, depths);
- `sweep`, `fixed_frontier`, `headroom_captured`, `controller_vs_frontier_ci`: AUC-vs-FLOPs
  curves and comparison with fixed depths at equal cost;
- `controllers.comparison.compare_controllers(valid, test, specs, budget_depths)`: the whole
  fit-on-valid / measure-on-test protocol for several controllers and budgets;
- `risk_calibrate`: a knob with a Learn-then-Test guarantee on disagreement with depth K;
- `save_controller` / `load_controller`: a fitted controller in a folder, for `adaptive-loop score`.

Example::

    from adaptive_loop.cost import CostModel
    from adaptive_loop.trace import load_trace
    from controllers import evaluate, make_controller

    valid, test = load_trace("runs/tiny/trace_valid.parquet"), load_trace("runs/tiny/trace_test.parquet")
    controller = make_controller("confidence", criterion="entropy").fit(valid)
    controller.calibrate(valid, CostModel.from_trace(valid).fixed_depth(1))  # the cost of depth 1
    report = evaluate(controller, test)
    print(report.auc, report.mean_cost, report.depth_histogram)
"""

from controllers.act import ACTHalting
from controllers.allocator import BudgetedAllocator, StreamingBudget, stream_trace
from controllers.base import (
    CalibrationResult,
    Controller,
    ControllerDecision,
    IncrementalController,
    OnlineState,
    StepView,
)
from controllers.bootstrap import BootstrapCI, controller_vs_frontier_ci, paired_bootstrap_auc_diff
from controllers.confidence import ConfidenceThreshold
from controllers.curves import (
    Curve,
    FixedFrontier,
    HeadroomCaptured,
    fixed_frontier,
    headroom_captured,
    mixture_auc,
    pareto_front,
    sweep,
)
from controllers.evaluation import ControllerReport, evaluate
from controllers.exit_gate import ExitGate
from controllers.fixed import FixedDepth
from controllers.lgbm_depth import LGBMDepth
from controllers.persistence import load_controller, save_controller
from controllers.registry import available_controllers, make_controller, register_controller
from controllers.risk import RiskCalibration, RiskCheck, risk_calibrate
from controllers.stability import StabilityPatience

__all__ = [
    "ACTHalting",
    "BudgetedAllocator",
    "ExitGate",
    "LGBMDepth",
    "StreamingBudget",
    "load_controller",
    "save_controller",
    "stream_trace",
    "BootstrapCI",
    "ControllerReport",
    "Curve",
    "FixedFrontier",
    "HeadroomCaptured",
    "RiskCalibration",
    "RiskCheck",
    "controller_vs_frontier_ci",
    "evaluate",
    "fixed_frontier",
    "headroom_captured",
    "mixture_auc",
    "paired_bootstrap_auc_diff",
    "pareto_front",
    "risk_calibrate",
    "sweep",
    "CalibrationResult",
    "ConfidenceThreshold",
    "Controller",
    "ControllerDecision",
    "FixedDepth",
    "IncrementalController",
    "OnlineState",
    "StabilityPatience",
    "StepView",
    "available_controllers",
    "make_controller",
    "register_controller",
]
