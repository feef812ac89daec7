"""Run configuration: documented keys, unknown keys rejected with a suggestion, overrides."""

import dataclasses

import pytest

from adaptive_loop.config import RunConfig, TrainConfig, describe_config, load_config
from adaptive_loop.errors import ConfigError


def test_every_key_is_documented() -> None:
    def walk(obj, prefix=""):
        for f in dataclasses.fields(obj):
            assert f.metadata.get("help"), f"config key {prefix}{f.name} has no help text"
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")

    walk(RunConfig())


def test_unknown_key_names_the_closest_valid_one(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.learning_rate.*'lr'"):
        load_config(path)
    path.write_text("model:\n  train_loop: 2\n")
    with pytest.raises(ConfigError, match=r"model\.train_loop.*'train_loops'"):
        load_config(path)


def test_wrong_types_and_bad_yaml_are_config_errors(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(path)
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_is_loaded_safely(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_overrides_and_described_defaults(tiny_config_path) -> None:
    config = load_config(tiny_config_path, ["train.lr=0.01", "model.train_loops=1", "trace.max_depth=-1"])
    assert config.train.lr == 0.01 and config.model.train_loops == 1
    assert config.trace_depth() == 3  # L + 2
    text = describe_config(config)
    assert "# Learning rate (the starting one when lr_schedule is 'plateau')." in text and "lr: 0.01" in text
    assert TrainConfig().monitor == "auc@L"
