"""`benchmarks/synthetic_regimes.py --vary`: settings parsed one key at a time, list values kept whole."""

from __future__ import annotations

import pytest

from _bench_scripts import load_benchmark

regimes = load_benchmark("synthetic_regimes")


def test_vary_splits_values_at_top_level_commas_only():
    assert regimes.parse_vary(["train.epochs=4,8", "train.depth_loss_weights=[1,1,1,1],[0.75,0.45,0.4,0.4]"]) == [
        ("train.epochs", ["4", "8"]),
        ("train.depth_loss_weights", ["[1,1,1,1]", "[0.75,0.45,0.4,0.4]"]),
    ]
    runs = regimes.settings_to_run(["seed=1"], regimes.parse_vary(["model.tower_hidden=[64],[64,32]"]), with_base=False)
    assert runs == [("model.tower_hidden=[64]", ["seed=1", "model.tower_hidden=[64]"]),
                    ("model.tower_hidden=[64,32]", ["seed=1", "model.tower_hidden=[64,32]"])]


def test_vary_without_a_value_is_a_clear_error():
    with pytest.raises(SystemExit, match="--vary expects key=value"):
        regimes.parse_vary(["train.epochs="])
