"""Oracle depths, headroom table, gains and needed-depth agreement."""

from __future__ import annotations

import numpy as np
import pytest
from _trace_factory import make_trace, tiny_trace

from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import bce_from_logits
from oracle import (
    depth_agreement,
    gain_targets,
    headroom_table,
    needed_depth_agreement,
    oracle_depths,
    per_sample_bce,
)


@pytest.fixture(scope="module")
def trace():
    return make_trace(6000, max_depth=5, seed=11, n_groups=300)


def test_ties_go_to_the_shallowest_depth():
    tr = tiny_trace([[1.0, 1.0, 1.0], [-2.0, 0.5, -2.0], [0.0, 3.0, 3.0]], [1, 0, 1])
    assert oracle_depths(tr).tolist() == [0, 0, 1]


def test_oracle_picks_max_prob_for_clicks_and_min_for_non_clicks(trace):
    d = oracle_depths(trace)
    z = trace.logits
    pos = trace.labels == 1
    np.testing.assert_array_equal(d[pos], np.argmax(z[pos], axis=1))
    np.testing.assert_array_equal(d[~pos], np.argmin(z[~pos], axis=1))


def test_oracle_auc_beats_every_fixed_depth(trace):
    table = headroom_table(trace)
    for row in table.fixed:
        assert table.oracle.auc >= row.auc
        assert table.oracle.logloss <= row.logloss
        assert row.gauc is not None
    assert table.gap > 0
    assert table.best_fixed.auc == max(r.auc for r in table.fixed)
    frame = table.to_frame()
    assert len(frame) == trace.n_depths + 3
    assert "gap (oracle - best fixed)" in table.to_markdown()
    assert "oracle" in table.to_text()
    assert table.to_dict()["best_fixed_depth"] == table.best_fixed.depth


def test_cost_aware_oracle_is_monotone_in_lambda(trace):
    bce = per_sample_bce(trace)
    previous = oracle_depths(trace, 0.0, bce=bce)
    assert np.array_equal(previous, oracle_depths(trace))
    for lam in (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0):
        d = oracle_depths(trace, lam, bce=bce)
        assert np.all(d <= previous), f"depth grew for some sample at lambda={lam}"
        previous = d
    assert np.all(previous == 0)
    with pytest.raises(ConfigError, match="cost_lambda"):
        oracle_depths(trace, -1.0)


def test_cost_aware_table_row(trace):
    table = headroom_table(trace, cost_lambda=0.05)
    assert table.cost_aware is not None
    assert table.cost_aware.mean_flops <= table.oracle.mean_flops
    assert table.cost_aware.auc <= table.oracle.auc


def test_gains_on_a_hand_made_example():
    tr = tiny_trace([[0.0, 1.0, 2.0], [0.0, 1.0, -1.0]], [1, 1])
    g = gain_targets(tr)
    bce = bce_from_logits(np.array([[1.0], [1.0]]), np.array([[0.0, 1.0, 2.0], [0.0, 1.0, -1.0]]))
    assert g.over_depth0.shape == g.over_previous.shape == (2, 3)
    np.testing.assert_allclose(g.over_depth0, bce[:, :1] - bce)
    np.testing.assert_allclose(g.over_previous[:, 0], 0.0)
    np.testing.assert_allclose(g.over_previous[:, 1:], bce[:, :-1] - bce[:, 1:])
    # log(2) - log(1 + e^-1) for the first step of sample 0
    assert g.over_previous[0, 1] == pytest.approx(np.log(2.0) - np.log1p(np.exp(-1.0)))
    assert g.over_previous[1, 2] < 0  # the last step hurts sample 1
    np.testing.assert_allclose(g.over_depth0[:, -1], g.over_previous.sum(axis=1))
    assert list(g.to_frame().columns) == [f"gain0_{t}" for t in range(3)] + [f"gain_prev_{t}" for t in range(3)]


def test_needed_depth_agreement_by_hand():
    a = depth_agreement(np.array([0, 1, 2, 2, 1]), np.array([0, 1, 2, 1, 2]))
    assert a.exact == pytest.approx(0.6)
    assert a.within_one == pytest.approx(1.0)
    expected = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(a.confusion, expected)
    assert a.spearman == pytest.approx(5 / 9, abs=1e-12)  # Pearson of tie-averaged ranks
    assert a.to_frame().shape == (3, 4)

    deeper_oracle = depth_agreement(np.array([0, 4, 1]), np.array([0, 1, 1]))
    assert deeper_oracle.confusion.shape == (2, 5)  # no empty rows for needed depths that never occur
    assert deeper_oracle.confusion[1, 4] == 1


def test_needed_depth_agreement_on_trace(trace):
    a = needed_depth_agreement(trace)
    assert a is not None and a.confusion.sum() == trace.n_samples
    assert a.spearman > 0  # the oracle tracks the generator's depth
    tr = tiny_trace([[0.0, 1.0]], [1])
    assert needed_depth_agreement(tr) is None
