"""The synthetic dataset: deterministic, all needed depths present, sizes, and a high Bayes AUC."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from adaptive_loop.data.datasets import generate_synthetic, load_raw_dataset
from adaptive_loop.errors import ConfigError


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = generate_synthetic(n_rows=5_000, seed=3)
    b = generate_synthetic(n_rows=5_000, seed=3)
    c = generate_synthetic(n_rows=5_000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a["label"].equals(c["label"])


def test_needed_depth_and_sizes() -> None:
    raw = load_raw_dataset("synthetic", n_rows=20_000, seed=1, seq_len=12)
    assert (len(raw.train), len(raw.valid), len(raw.test)) == (16_000, 2_000, 2_000)
    assert raw.extra_columns == ("needed_depth",)
    depth = raw.train["needed_depth"].to_numpy()
    assert set(np.unique(depth)) == {0, 1, 2, 3}
    hist_len = raw.train["hist_items"].list.len().to_numpy()
    assert hist_len.min() >= 4 and hist_len.max() <= 12
    assert (raw.train["pointer"].to_numpy() < hist_len).all()
    assert (raw.train["slot"].to_numpy() // 2 == depth).all()  # the regime is visible in the features
    assert 0.35 < raw.train["label"].mean() < 0.65


def test_bayes_auc_is_high_in_every_regime() -> None:
    frame = generate_synthetic(n_rows=40_000, seed=0)
    assert 0.85 < roc_auc_score(frame["label"], frame["true_prob"]) < 0.97
    for d in range(4):
        part = frame[frame["needed_depth"] == d]
        assert roc_auc_score(part["label"], part["true_prob"]) > 0.85


def test_depth_mix_and_bad_options() -> None:
    frame = generate_synthetic(n_rows=2_000, seed=0, depth_mix=(1, 0, 0, 1))
    assert set(frame["needed_depth"].unique()) == {0, 3}
    with pytest.raises(ConfigError, match="depth_mix"):
        generate_synthetic(n_rows=10, depth_mix=(1, 1))
    with pytest.raises(ConfigError, match="did you mean 'n_rows'"):
        load_raw_dataset("synthetic", nrows=10)
