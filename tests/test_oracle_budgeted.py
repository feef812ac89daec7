"""Budgeted oracle curve: monotone in budget, exact Lagrangian, oracle at the top."""

from __future__ import annotations

import numpy as np
import pytest
from _trace_factory import make_trace

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import BudgetError
from oracle import BudgetedOracle, budgeted_oracle, budgeted_oracle_curve, headroom_table, per_sample_bce


@pytest.fixture(scope="module")
def trace():
    return make_trace(5000, max_depth=5, seed=5)


def test_curve_is_monotone_and_reaches_the_oracle(trace):
    curve = budgeted_oracle_curve(trace, n_points=15)
    assert np.all(np.diff(curve.auc) >= 0)
    oracle_auc = headroom_table(trace).oracle.auc
    assert curve.auc[-1] == pytest.approx(oracle_auc, abs=1e-12)
    assert curve.oracle_auc == pytest.approx(oracle_auc, abs=1e-12)
    assert curve.auc[0] == pytest.approx(headroom_table(trace).fixed[0].auc, abs=1e-12)
    for m, costs in curve.method_cost.items():
        assert np.all(costs <= curve.budgets + 1e-6), m
    assert curve.to_frame().shape[0] == 15
    assert curve.auc_at(curve.budgets[3]) == pytest.approx(curve.auc[3])


def test_lagrangian_equals_argmin_at_its_lambda(trace):
    bo = BudgetedOracle(trace, methods=("lagrangian", "greedy"))
    bce = per_sample_bce(trace)
    costs = CostModel.from_trace(trace).depth_costs(trace.max_depth)
    units = CostModel.from_trace(trace).depth_units(trace.max_depth)[1]
    full = costs[np.argmin(bce, axis=1)].mean()  # unconstrained oracle cost
    for budget in np.linspace(*bo.cost_range, 9)[1:-1]:
        alloc = bo.allocate(float(budget), "lagrangian")
        direct = np.argmin(bce + alloc.lam * units[None, :], axis=1)
        np.testing.assert_array_equal(alloc.depths, direct)
        greedy = bo.allocate(float(budget), "greedy")
        assert alloc.mean_cost <= greedy.mean_cost <= budget + 1e-6
        # the greedy spends the budget (up to the oracle's own cost) to within one upgrade
        assert min(budget, full) - greedy.mean_cost <= (costs[-1] - costs[0]) / trace.n_samples + 1e-9


def test_budget_range(trace):
    lo, hi = BudgetedOracle(trace, methods=("lagrangian",)).cost_range
    with pytest.raises(BudgetError, match="feasible range"):
        budgeted_oracle(trace, lo - 1.0)
    top = budgeted_oracle(trace, hi * 2)
    assert top.auc == pytest.approx(headroom_table(trace).oracle.auc)
    assert np.all(budgeted_oracle(trace, lo).depths == 0)
