"""ModelConfig: documented fields, strict loading, validation, default sizes."""

from __future__ import annotations

import dataclasses

import pytest

from adaptive_loop.data.spec import CategoricalFeature, FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model import ModelConfig, build_model, count_parameters


def test_every_field_is_documented() -> None:
    for f in dataclasses.fields(ModelConfig):
        assert f.metadata.get("help"), f.name


def test_unknown_key_names_the_closest_valid_key() -> None:
    with pytest.raises(ConfigError, match="n_experts"):
        ModelConfig.from_dict({"n_expert": 4})


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"balance_loss": "swich"}, "switch"),
        ({"name": "loopctrr"}, "loopctr"),
        ({"train_loops": "3"}, "train_loops"),
        ({"moe": 1}, "moe"),
        ({"d_model": 30, "n_heads": 4}, "n_heads"),
        ({"top_k": 5}, "top_k"),
        ({"hc_streams": 0}, "hc_streams"),
        ({"tower_hidden": [64, 0]}, "tower_hidden"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(raw: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        ModelConfig.from_dict(raw)


def test_from_dict_coerces_lists_and_ints() -> None:
    cfg = ModelConfig.from_dict({"tower_hidden": [64, 32], "aux_weight": 1})
    assert cfg.tower_hidden == (64, 32)
    assert cfg.aux_weight == 1.0
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_tiny_preset_and_overrides() -> None:
    cfg = ModelConfig.tiny(train_loops=2)
    assert cfg.d_model == 16 and cfg.train_loops == 2
    with pytest.raises(ConfigError):
        ModelConfig.tiny(top_k=9)


def test_default_size_is_in_the_reported_band() -> None:
    spec = FeatureSpec(categorical=tuple(CategoricalFeature(f"c{i}", 500) for i in range(10)))
    dense, embedding = count_parameters(build_model(ModelConfig(), spec))
    assert 300_000 <= dense <= 1_200_000
    assert embedding == 10 * 500 * 16
