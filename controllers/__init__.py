"""Depth controllers: decide per sample how many loop steps to run, under a FLOPs budget.

    base.py          the contract: `Controller` (offline `decide(trace)`, online `start` /
                     `should_stop` or `decide_upfront`, one budget knob, `calibrate`),
                     `StepView`, `ControllerDecision`, `search_space`
    incremental.py   `IncrementalController`: threshold rules ("stop once the score passes")
    registry.py      controllers by name; each registers itself, none is listed anywhere
    persistence.py   `save_controller` / `load_controller` (no pickle)
    risk.py          `risk_calibrate`: a knob with a Learn-then-Test guarantee
    fixed.py, confidence.py, stability.py   the rule-based controllers
    learned/         ACT halting head, exit gate, LightGBM depth predictor, budgeted allocator

This package imports only the trace contract, the cost model and core utilities (plus the
torch-only halting head, `adaptive_loop.model.halting`, for learned heads). Evaluating
controllers (AUC-vs-FLOPs curves, frontier, bootstrap, comparisons, tuning) is the harness,
`adaptive_loop.harness`. Budgets and costs are FLOPs/sample, priced by
`adaptive_loop.cost.CostModel`.

Example (`adaptive_loop.harness.evaluate(controller, test)` then reports AUC and costs)::

    from adaptive_loop.cost import CostModel
    from adaptive_loop.trace import load_trace
    from controllers import make_controller

    valid, test = load_trace("runs/tiny/trace_valid.parquet"), load_trace("runs/tiny/trace_test.parquet")
    controller = make_controller("confidence", criterion="entropy").fit(valid)
    controller.calibrate(valid, CostModel.from_trace(valid).fixed_depth(1))  # the cost of depth 1
    decision = controller.decide(test)  # depth, exits, controller FLOPs and cost per sample
    print(decision.mean_cost, decision.depth[:10])

Every registered controller class is also an attribute of this package by its class name
(`controllers.ConfidenceThreshold`), found through the registry.
"""

from typing import Any

from controllers.base import CalibrationResult, Controller, ControllerDecision, OnlineState, StepView
from controllers.incremental import IncrementalController
from controllers.persistence import load_controller, save_controller
from controllers.registry import (
    available_controllers,
    controller_class,
    make_controller,
    register_controller,
    tunable_controllers,
)
from controllers.risk import RiskCalibration, RiskCheck, risk_calibrate

__all__ = [
    "CalibrationResult",
    "Controller",
    "ControllerDecision",
    "IncrementalController",
    "OnlineState",
    "RiskCalibration",
    "RiskCheck",
    "StepView",
    "available_controllers",
    "controller_class",
    "load_controller",
    "make_controller",
    "register_controller",
    "risk_calibrate",
    "save_controller",
    "tunable_controllers",
]


def __getattr__(name: str) -> Any:
    """A registered controller class by its class name (`controllers.ACTHalting`)."""
    for registered in map(controller_class, available_controllers()):
        if registered.__name__ == name:
            return registered
    raise AttributeError(f"module 'controllers' has no attribute {name!r}")
