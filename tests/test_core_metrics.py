"""Metrics agree with scikit-learn and handle edge cases."""

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from adaptive_loop.metrics import auc, bce_from_logits, gauc, logloss, logloss_from_logits, sigmoid


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
