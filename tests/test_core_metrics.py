"""The library's one AUC / gAUC (and logloss) agree with scikit-learn and handle edge cases."""

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from adaptive_loop.engine import StreamingAUC
from adaptive_loop.harness.bootstrap import SortedScores
from adaptive_loop.metrics import auc, auc_from_counts, bce_from_logits, gauc, logloss, logloss_from_logits, sigmoid


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    s = np.round(rng.normal(size=5000) + y, 1)  # rounding creates many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_single_class_is_nan() -> None:
    assert np.isnan(auc(np.ones(10), np.arange(10)))


def test_logloss_from_logits_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    z = rng.normal(scale=3, size=1000)
    assert logloss_from_logits(y, z) == pytest.approx(log_loss(y, sigmoid(z)), rel=1e-9)
    assert logloss(y, sigmoid(z)) == pytest.approx(log_loss(y, sigmoid(z)), rel=1e-6)


def test_bce_is_stable_for_extreme_logits() -> None:
    values = bce_from_logits(np.array([1.0, 0.0]), np.array([-1000.0, 1000.0]))
    assert np.all(np.isfinite(values))
    assert values == pytest.approx([1000.0, 1000.0])


def test_gauc_weights_groups_by_size_and_skips_single_class_groups() -> None:
    y = np.array([1, 0, 1, 0, 0, 1, 1, 1])
    s = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.7, 0.5, 0.6])
    g = np.array([0, 0, 1, 1, 1, 1, 2, 2])  # group 2 has one class only
    expected = (auc(y[:2], s[:2]) * 2 + auc(y[2:6], s[2:6]) * 4) / 6
    assert gauc(y, s, g) == pytest.approx(expected)


def test_gauc_matches_per_group_sklearn_with_ties() -> None:
    rng = np.random.default_rng(2)
    n = 6000
    groups = rng.integers(0, 150, n)
    y = (rng.random(n) < 0.3).astype(int)
    s = np.round(rng.normal(size=n) + y, 1)
    total = weight = 0.0
    for g in np.unique(groups):
        rows = groups == g
        if 0 < y[rows].sum() < rows.sum():
            total += roc_auc_score(y[rows], s[rows]) * rows.sum()
            weight += rows.sum()
    assert gauc(y, s, groups) == pytest.approx(total / weight, abs=1e-12)


def test_auc_from_counts_equals_weighted_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.4).astype(int)
    s = np.round(rng.normal(size=3000) + y, 1)
    w = rng.integers(0, 4, 3000).astype(float)  # bootstrap multiplicities
    expected = roc_auc_score(y, s, sample_weight=w)
    runs = np.unique(s, return_inverse=True)[1]
    pos = np.bincount(runs, weights=w * y)
    neg = np.bincount(runs, weights=w * (1 - y))
    assert float(auc_from_counts(pos, neg)) == pytest.approx(expected, abs=1e-12)
    assert SortedScores.build(y, s).weighted_auc(w[None, :])[0] == pytest.approx(expected, abs=1e-12)
    idx = rng.integers(0, 3000, 3000)
    assert SortedScores.build(y, s).auc_of_resamples(idx[None, :])[0] == pytest.approx(
        roc_auc_score(y[idx], s[idx]), abs=1e-12)
    assert np.isnan(auc_from_counts(np.array([2.0, 1.0]), np.zeros(2)))


def test_streaming_auc_is_exact_when_every_score_has_its_own_bin() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(5000) < 0.3).astype(float)
    z = np.round(rng.normal(0, 2, 5000) + y, 2)  # ties on purpose; bins (3e-5 wide) never merge distinct values
    meter = StreamingAUC()
    for part in np.array_split(np.arange(5000), 3):
        meter.update(y[part], z[part])
    assert meter.value() == pytest.approx(roc_auc_score(y, z), abs=1e-12)
