"""The predictability bound finds depth gains a side column predicts, and none where no input does."""

from __future__ import annotations

import numpy as np
import pytest
from _headroom_factory import hidden_block

from adaptive_loop.errors import ConfigError
from adaptive_loop.harness.predictability import fold_ids, label_free_features, predictability_bound

FAST = dict(folds=3, n_estimators=60, seed=0)


@pytest.fixture(scope="module")
def visible():
    trace, ideal = hidden_block(2500, seed=0, visible=True)
    return trace, ideal, predictability_bound(trace, **FAST)


def test_gain_predictable_from_a_side_column_is_found(visible):
    trace, ideal, bound = visible
    assert ideal > 0.02
    assert bound.gain > 0.6 * ideal  # most of what perfect knowledge of `group` would give
    assert bound.share > 0.1
    assert bound.depths.shape == (trace.n_samples,) and set(np.unique(bound.depths)) <= set(range(trace.n_depths))


def test_gain_no_input_predicts_stays_near_zero(visible):
    _, ideal, visible_bound = visible
    hidden_trace, _ = hidden_block(2500, seed=0, visible=False)
    hidden = predictability_bound(hidden_trace, **FAST)
    assert hidden.oracle_headroom > 0.05  # the label finds headroom ...
    assert abs(hidden.gain) < 0.3 * ideal  # ... that nothing a controller sees predicts
    assert hidden.share < 0.1 and visible_bound.gain > 2 * abs(hidden.gain)


def test_ground_truth_columns_are_never_inputs():
    trace, _ = hidden_block(600, seed=1, visible=True)
    trace.features["needed_depth"] = trace.features["group"] * 3  # ground truth of the synthetic generator
    _, names = label_free_features(trace)
    assert "needed_depth" not in names and "group" in names
    assert {"logit_0", "step_1", "logit_spread"} <= set(names)


def test_folds_are_seeded_and_balanced():
    a, b = fold_ids(103, 5, 3), fold_ids(103, 5, 3)
    assert np.array_equal(a, b) and np.bincount(a).min() >= 20
    assert not np.array_equal(a, fold_ids(103, 5, 4))


def test_bad_settings_are_refused():
    trace, _ = hidden_block(300, seed=2)
    with pytest.raises(ConfigError, match="target"):
        predictability_bound(trace, target="auc")
    with pytest.raises(ConfigError, match="folds"):
        predictability_bound(trace, folds=1)
