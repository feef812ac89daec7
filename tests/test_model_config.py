"""Per-model configs: documented fields, strict loading, validation, default sizes, saved runs."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from adaptive_loop.config import config_to_yaml, load_config
from adaptive_loop.data.spec import CategoricalFeature, FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model import (
    MODEL_NAMES,
    DCNv2Config,
    DeepFMConfig,
    LoopCTRConfig,
    build_model,
    config_class,
    config_from_dict,
    count_parameters,
    tiny_config,
)
from adaptive_loop.model.testing import toy_spec


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_field_of_every_model_config_is_documented(name: str) -> None:
    for f in dataclasses.fields(config_class(name)):
        assert f.metadata.get("help"), f"{name}: {f.name}"


def test_unknown_key_names_the_closest_valid_key() -> None:
    with pytest.raises(ConfigError, match="n_experts"):
        config_from_dict({"n_expert": 4})


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
        ({"name": "dcnv2", "dcn_structure": "paralel"}, "parallel"),
        ({"name": "deepfm", "deepfm_hidden": [0]}, "deepfm_hidden"),
        ({"name": "deepfm", "train_loops": 3}, "train_loops"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(raw: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        config_from_dict(raw)


def test_a_key_of_another_model_is_an_error_in_a_users_config(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"'model.d_model' for model 'deepfm' \(it is a key of loopctr, stackctr\)"):
        config_from_dict({"name": "deepfm", "d_model": 32})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "dcnv2", "deepfm_hiden": [32]}}))
    with pytest.raises(ConfigError, match="did you mean 'dcn_hidden'"):
        load_config(path)


def test_from_dict_builds_each_models_own_config_and_round_trips() -> None:
    cfg = config_from_dict({"tower_hidden": [64, 32], "aux_weight": 1})
    assert isinstance(cfg, LoopCTRConfig) and cfg.tower_hidden == (64, 32) and cfg.aux_weight == 1.0
    assert config_from_dict(cfg.to_dict()) == cfg
    deepfm = config_from_dict({"name": "deepfm", "deepfm_hidden": [8]})
    assert isinstance(deepfm, DeepFMConfig) and deepfm.deepfm_hidden == (8,) and deepfm.train_loops == 0
    assert "d_model" not in deepfm.to_dict()
    assert isinstance(config_from_dict({"name": "dcnv2"}), DCNv2Config)
    assert config_from_dict({"name": "stackctr"}).name == "stackctr"


def test_tiny_preset_and_overrides() -> None:
    cfg = tiny_config(train_loops=2)
    assert cfg.d_model == 16 and cfg.train_loops == 2
    with pytest.raises(ConfigError):
        tiny_config(top_k=9)
    assert tiny_config("dcnv2").dcn_cross_layers == 2


def test_build_model_refuses_a_config_of_another_model() -> None:
    with pytest.raises(ConfigError, match="DeepFMConfig"):
        build_model(LoopCTRConfig(name="deepfm"), toy_spec())


def test_default_size_is_in_the_reported_band() -> None:
    spec = FeatureSpec(categorical=tuple(CategoricalFeature(f"c{i}", 500) for i in range(10)))
    dense, embedding = count_parameters(build_model(LoopCTRConfig(), spec))
    assert 300_000 <= dense <= 1_200_000
    assert embedding == 10 * 500 * 16


# The flat `model:` section every run config held before each model had its own config.
FLAT_MODEL_SECTION = {
    "name": "deepfm", "embed_dim": 8, "d_model": 64, "n_heads": 4, "ffn_mult": 2, "train_loops": 0, "moe": True,
    "n_experts": 4, "top_k": 2, "moe_attention": True, "router_renormalize": True, "balance_loss": "switch",
    "aux_weight": 0.01, "hyper_connections": True, "hc_streams": 2, "hc_dynamic": True, "hc_scale_init": 0.01,
    "hc_readout": "mean", "dropout": 0.1, "seq_compress_queries": 0, "entry_groups": "seq_global",
    "summary": "mean_global", "exit_cross_attention": True, "tower_hidden": [256, 128], "init_std": 0.02,
    "embed_init_std": 0.05, "numeric_mode": "embed", "deepfm_hidden": [16], "dcn_cross_layers": 3, "dcn_low_rank": 0,
    "dcn_hidden": [256, 128], "dcn_structure": "stacked",
}


def test_a_saved_run_config_with_every_models_keys_still_loads(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"seed": 3, "model": FLAT_MODEL_SECTION}))
    with pytest.raises(ConfigError, match="for model 'deepfm'"):
        load_config(path)  # written by a user, the other models' keys are mistakes
    config = load_config(path, saved_run=True)  # a run directory's own config.yaml
    assert isinstance(config.model, DeepFMConfig)
    assert (config.model.embed_dim, config.model.dropout, config.model.deepfm_hidden) == (8, 0.1, (16,))
    assert "d_model" not in yaml.safe_load(config_to_yaml(config))["model"]
