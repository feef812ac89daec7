"""Honest cost accounting and budget calibration."""

from __future__ import annotations

import numpy as np
import pytest
from _trace_factory import make_trace, tiny_trace

from adaptive_loop.errors import BudgetError
from controllers import ConfidenceThreshold, FixedDepth, StabilityPatience, make_controller
from controllers.confidence import FLOPS_MARGIN
from controllers.stability import FLOPS_PER_STEP


@pytest.fixture(scope="module")
def trace():
    return make_trace(5000, max_depth=5, seed=8)


def test_cost_accounting_by_hand():
    # entry 100, loop 10, exit 1; K = 2
    tr = tiny_trace([[3.0, 3.1, 3.2], [0.0, 2.0, 2.5], [0.0, 0.1, 0.2]], [1, 1, 0])
    conf = ConfidenceThreshold(threshold=0.5).fit(tr).decide(tr)
    assert conf.depth.tolist() == [0, 1, 2]
    assert conf.exits.tolist() == [1, 2, 3]
    f = FLOPS_MARGIN
    np.testing.assert_allclose(conf.controller_flops, [f, 2 * f, 2 * f])  # the rule does not run at K
    np.testing.assert_allclose(conf.cost, [100 + 1 + f, 100 + 10 + 2 + 2 * f, 100 + 20 + 3 + 2 * f])

    fixed = FixedDepth(depth=1).fit(tr).decide(tr)
    np.testing.assert_allclose(fixed.cost, [111.0, 111.0, 111.0])
    assert fixed.exits.tolist() == [1, 1, 1] and fixed.controller_flops.tolist() == [0, 0, 0]

    stab = StabilityPatience(delta=0.5, criterion="delta_logit").fit(tr).decide(tr)
    s = FLOPS_PER_STEP["delta_logit"]
    assert stab.depth.tolist() == [1, 2, 1]
    np.testing.assert_allclose(stab.cost, [100 + 10 + 2 + 2 * s, 100 + 20 + 3 + 2 * s, 100 + 10 + 2 + 2 * s])


@pytest.mark.parametrize(
    "name,params",
    [
        ("confidence", {}),
        ("confidence", {"criterion": "entropy", "per_depth": True}),
        ("stability", {}),
        ("stability", {"criterion": "kl", "patience": 2}),
    ],
)
def test_calibrate_meets_the_budget(trace, name, params):
    c = make_controller(name, **params).fit(trace)
    lo, hi = c.cost_range(trace)
    step = (hi - lo)
    for frac in (0.2, 0.5, 0.8):
        budget = lo + frac * step
        c.calibrate(trace, budget)
        cost = c.decide(trace).mean_cost
        assert cost <= budget + 1e-9
        assert cost >= budget - 0.01 * step, f"{name} {params}: {cost} far below {budget}"
        assert c.calibration_.mean_cost == pytest.approx(cost)
    c.calibrate(trace, hi)
    assert c.decide(trace).mean_cost == pytest.approx(hi)
    c.calibrate(trace, lo)
    assert c.decide(trace).mean_cost == pytest.approx(lo)


def test_fixed_depth_calibration_is_exact(trace):
    c = FixedDepth().fit(trace)
    c.calibrate(trace, 1000 + 50 + 2.7 * 200)  # between depth 2 and 3
    assert c.depth == 2 and isinstance(c.depth, int)
    c.calibrate(trace, 1000 + 50 + 5 * 200)
    assert c.depth == 5


@pytest.mark.parametrize("name", ["fixed", "confidence", "stability"])
def test_budget_outside_range_raises(trace, name):
    c = make_controller(name).fit(trace)
    lo, hi = c.cost_range(trace)
    for bad in (lo - 1.0, hi + 1.0):
        with pytest.raises(BudgetError, match=r"\[.*\]"):
            c.calibrate(trace, bad)


def test_patience_sets_the_cheapest_cost(trace):
    lo, _ = StabilityPatience(patience=2).fit(trace).cost_range(trace)
    assert lo == pytest.approx(1000 + 2 * 200 + 3 * 50 + 3 * FLOPS_PER_STEP["delta_p"])
