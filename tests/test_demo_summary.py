"""Per-regime AUC tables and the demo summary on traces whose needed depth is known."""

import numpy as np
import pytest

from adaptive_loop.demo_summary import needed_depth_decision, summarize_demo
from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import auc, sigmoid
from adaptive_loop.regimes import format_regime_table, regime_auc
from tests._trace_factory import make_trace


def test_regime_auc_per_regime_and_depth() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    regime = rng.integers(0, 2, n)
    truth = rng.normal(0, 2, n)
    labels = (rng.random(n) < sigmoid(truth)).astype(np.float32)
    # regime 0 is right at depth 0, regime 1 only at depth 1
    noise = rng.normal(0, 1, n)
    logits = np.stack([np.where(regime == 0, truth, noise), truth], axis=1)
    rows = regime_auc(labels, logits, regime, sigmoid(truth))
    assert [r.regime for r in rows] == [0, 1, None]
    r0, r1, everything = rows
    assert r0.depth_auc[0] == pytest.approx(r0.depth_auc[1]) and r0.best_depth == 0
    assert r1.depth_auc[0] == pytest.approx(0.5, abs=0.05) and r1.depth_auc[1] > 0.75 and r1.best_depth == 1
    assert r1.bayes_auc == pytest.approx(auc(labels[regime == 1], truth[regime == 1]))
    assert everything.n_rows == n
    assert "needed_depth" in format_regime_table(rows)
    with pytest.raises(ConfigError, match="same rows"):
        regime_auc(labels[:10], logits, regime)


def _with_truth(seed: int, split: str):
    trace = make_trace(n=3000, max_depth=4, seed=seed, split=split, overthink_fraction=0.0)
    trace.features["true_prob"] = sigmoid(trace.logits[np.arange(trace.n_samples), trace.features["needed_depth"]])
    return trace


def test_summary_measures_the_needed_depth_policy_and_a_calibrated_controller() -> None:
    valid, test = _with_truth(1, "valid"), _with_truth(2, "test")
    summary = summarize_demo(valid, test, train_loops=3, n_resamples=200, seed=0)
    d = summary.to_dict()
    assert {"test_auc", "bayes_auc", "regime_auc", "oracle_headroom", "needed_depth_policy", "controller"} <= d.keys()
    assert set(summary.regime_auc) == {str(k) for k in np.unique(test.features["needed_depth"])}
    assert all(len(v) == test.n_depths for v in summary.regime_auc.values())
    policy = needed_depth_decision(test)
    assert summary.needed_depth_policy.auc == pytest.approx(auc(test.labels, policy.logits(test)))
    assert summary.needed_depth_policy.mean_flops == pytest.approx(policy.mean_cost)
    c = summary.controller
    assert c.name == "lgbm_depth" and c.params["target"] == "gain" and c.ci_low <= c.ci_high
    # calibrated on validation to the policy's validation cost: close to it on test as well
    assert c.mean_flops == pytest.approx(needed_depth_decision(valid).mean_cost, rel=0.1)
    gain = summary.needed_depth_policy.auc - summary.needed_depth_policy.frontier_auc
    assert gain > 0  # in these traces each row is right from its needed depth on
    assert c.captured == pytest.approx((c.auc - c.frontier_auc) / gain)
    assert "needed-depth policy" in summary.to_text()


def test_summary_needs_the_ground_truth_columns() -> None:
    trace = make_trace(n=500, max_depth=3, seed=0)
    with pytest.raises(ConfigError, match="true_prob"):
        summarize_demo(trace, trace, train_loops=3)
