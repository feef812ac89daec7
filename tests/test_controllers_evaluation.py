"""Evaluation report, frontier, headroom captured, Pareto front and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from _trace_factory import make_trace, tiny_trace
from scipy.stats import norm

from adaptive_loop.cost import CostModel
from adaptive_loop.harness import (
    controller_vs_frontier_ci,
    evaluate,
    fixed_frontier,
    headroom_captured,
    paired_bootstrap_auc_diff,
    pareto_front,
    sweep,
)
from adaptive_loop.harness.curves import headroom_ratio, mixture_depths
from controllers import ConfidenceThreshold, FixedDepth
from controllers.base import ControllerDecision
from oracle import headroom_table, oracle_depths


@pytest.fixture(scope="module")
def trace():
    return make_trace(4000, max_depth=5, seed=13, n_groups=200)


def test_evaluate_report(trace):
    c = ConfidenceThreshold(threshold=0.5).fit(trace)
    r = evaluate(c, trace)
    d = c.decide(trace)
    assert r.n_samples == trace.n_samples and sum(r.depth_histogram) == trace.n_samples
    assert r.mean_cost == pytest.approx(d.cost.mean())
    assert r.cost_p50 <= r.cost_p90 <= r.cost_p99 <= d.cost.max()
    assert r.mean_exits == pytest.approx(r.mean_depth + 1)
    assert r.gauc is not None and 0.5 < r.auc < 1
    assert r.knob == 0.5 and r.knob_name == "threshold"
    assert "auc" in r.to_markdown() and r.to_dict()["controller"] == "confidence"


def test_frontier_interpolates_and_skips_overthinking(trace):
    fr = fixed_frontier(trace)
    costs = CostModel.from_trace(trace).depth_costs(trace.max_depth)
    table = headroom_table(trace)
    assert fr.best_auc == pytest.approx(table.best_fixed.auc)
    for t in fr.kept:
        assert fr.auc_at(costs[t]) == pytest.approx(fr.aucs[t])
    a, b = fr.kept[0], fr.kept[1]
    mid = 0.5 * (costs[a] + costs[b])
    assert fr.auc_at(mid) == pytest.approx(0.5 * (fr.aucs[a] + fr.aucs[b]))
    assert fr.auc_at(costs[-1] * 2) == pytest.approx(fr.best_auc)  # flat beyond the best depth
    depths = mixture_depths(fr, trace.n_samples, mid, seed=1)
    assert costs[depths].mean() == pytest.approx(mid, abs=(costs[b] - costs[a]) / trace.n_samples)
    np.testing.assert_array_equal(depths, mixture_depths(fr, trace.n_samples, mid, seed=1))


def test_headroom_captured_on_a_constructed_case():
    # depth 1 is better on average; the oracle is perfect
    tr = tiny_trace(
        [[2.0, 1.0], [-1.0, 1.5], [0.5, -2.0], [-2.0, -1.0], [0.0, -1.5], [1.0, -0.5]],
        [1, 1, 0, 0, 1, 0],
    )
    table = headroom_table(tr)
    assert table.oracle.auc == pytest.approx(1.0) and table.best_fixed.auc == pytest.approx(7 / 9)
    fr = fixed_frontier(tr)
    fixed1 = FixedDepth(depth=1).fit(tr)
    r1 = evaluate(fixed1, tr)
    h = headroom_captured(r1.auc, r1.mean_cost, tr, table.oracle.auc, fr)
    assert h.captured == pytest.approx(0.0, abs=1e-12)
    d = ControllerDecision.from_depths(tr, oracle_depths(tr), np.ones(6, dtype=int))
    h_oracle = headroom_captured(1.0, max(d.mean_cost, fr.costs[fr.best_depth]), tr, 1.0, fr)
    assert h_oracle.captured == pytest.approx(1.0)
    assert headroom_ratio(0.80, 0.78, 0.90, 0.80) == pytest.approx(0.2)
    assert np.isnan(headroom_ratio(0.8, 0.8, 0.8, 0.8))


def test_sweep_and_pareto(trace):
    c = ConfidenceThreshold().fit(trace)
    curve = sweep(c, trace, n_points=20)
    assert c.threshold == 0.8  # restored
    assert np.all(np.diff(curve.costs) >= 0) and len(curve.costs) <= 20
    front = curve.pareto()
    assert np.all(np.diff(front.costs) >= 0) and np.all(np.diff(front.aucs) > 0)
    idx = pareto_front(np.array([1.0, 2.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.7, 0.6, 0.65, 0.8]))
    assert idx.tolist() == [0, 1, 4]


def test_bootstrap_ci_covers_a_known_difference():
    rng = np.random.default_rng(0)
    n = 20000
    y = (rng.random(n) < 0.3).astype(float)
    a = y * 1.0 + rng.normal(size=n)
    b = y * 0.6 + rng.normal(size=n)
    truth = norm.cdf(1.0 / np.sqrt(2)) - norm.cdf(0.6 / np.sqrt(2))
    ci = paired_bootstrap_auc_diff(y, a, b, n_resamples=400, seed=7)
    assert ci.contains(truth)
    assert ci.low < ci.estimate < ci.high
    assert ci.high - ci.low < 0.03
    again = paired_bootstrap_auc_diff(y, a, b, n_resamples=400, seed=7)
    assert again == ci
    other = paired_bootstrap_auc_diff(y, a, b, n_resamples=400, seed=8)
    assert other.low != ci.low
    same = paired_bootstrap_auc_diff(y, a, a, n_resamples=50, seed=1)
    assert same.low == same.high == 0.0


def test_controller_vs_frontier_ci(trace):
    c = ConfidenceThreshold(threshold=0.5).fit(trace)
    ci = controller_vs_frontier_ci(c.decide(trace), trace, n_resamples=100, seed=3)
    assert ci.low <= ci.estimate <= ci.high
    assert ci == controller_vs_frontier_ci(c.decide(trace), trace, n_resamples=100, seed=3)
