"""The model registry: `model.name` -> the model class and its config dataclass.

`MODELS` is the one list of model names. A model is one file with the model and its config
dataclass (a `ModelConfig` subclass); adding one is that file plus its line here. Everything
that picks a model by name (building it, reading the `model:` section of a run config,
listing the names in errors) goes through this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from adaptive_loop.config_loading import closest_key, from_dict
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.dcnv2 import DCNv2, DCNv2Config
from adaptive_loop.model.deepfm import DeepFM, DeepFMConfig
from adaptive_loop.model.loopctr import LoopCTR, StackCTR
from adaptive_loop.model.loopctr_config import LoopCTRConfig
from adaptive_loop.model.model_config import ModelConfig


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its class (built as `model(config, spec)`) and its config dataclass."""

    model: type[nn.Module]
    config: type[ModelConfig]


MODELS: dict[str, ModelEntry] = {
    "loopctr": ModelEntry(LoopCTR, LoopCTRConfig),
    "stackctr": ModelEntry(StackCTR, LoopCTRConfig),
    "deepfm": ModelEntry(DeepFM, DeepFMConfig),
    "dcnv2": ModelEntry(DCNv2, DCNv2Config),
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def model_entry(name: str) -> ModelEntry:
    """The registered model called `name`; `ConfigError` naming the closest name otherwise."""
    if name not in MODELS:
        close = closest_key(str(name), list(MODELS))
        hint = f" (did you mean {close!r}?)" if close else ""
        raise ConfigError(f"model.name={name!r} is not one of {', '.join(MODEL_NAMES)}{hint}")
    return MODELS[name]


def config_class(name: str) -> type[ModelConfig]:
    """The config dataclass of the model called `name`."""
    return model_entry(name).config


def build_model(config: ModelConfig, spec: FeatureSpec) -> nn.Module:
    """A freshly initialised model (seed torch beforehand for a reproducible init); implements `DepthModel`."""
    entry = model_entry(config.name)
    if not isinstance(config, entry.config):
        raise ConfigError(f"model.name={config.name!r} needs a {entry.config.__name__}, got a {type(config).__name__}")
    return entry.model(config, spec)


def config_from_dict(raw: Any, where: str = "model") -> ModelConfig:
    """The config of the model `raw["name"]` names (default loopctr), every key checked.

    A key that belongs to another model's config is an error that says so, like any unknown
    key (with the closest valid key). Saved runs written before the per-model configs hold
    every model's keys: pass them through `own_keys` first.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(raw).__name__}")
    name = raw.get("name", "loopctr")
    cls = config_class(name)
    own = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in own:
            owners = sorted(n for n, e in MODELS.items() if key in {f.name for f in dataclasses.fields(e.config)})
            if owners:
                close = closest_key(str(key), sorted(own))
                hint = f"; did you mean {close!r}?" if close else ""
                dotted = f"{where}.{key}" if where else str(key)
                raise ConfigError(
                    f"unknown config key {dotted!r} for model {name!r} (it is a key of {', '.join(owners)}){hint}"
                )
    return from_dict(cls, raw, where)


def own_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` without the keys that only other models' configs have.

    Run configs saved before each model had its own config dataclass hold one flat `model:`
    section with every model's keys; loading a saved run drops the keys of the other models.
    Keys no model has stay, so a corrupted section is still reported.
    """
    cls = config_class(raw.get("name", "loopctr"))
    own = {f.name for f in dataclasses.fields(cls)}
    others = {f.name for e in MODELS.values() for f in dataclasses.fields(e.config)} - own
    return {k: v for k, v in raw.items() if k not in others}


def tiny_config(name: str = "loopctr", **overrides: Any) -> ModelConfig:
    """A very small config of model `name` for tests and notebooks (its class's `TINY` preset)."""
    return config_class(name).tiny(name=name, **overrides)
