"""`build_model(config, spec)`: the one place that maps `ModelConfig.name` to a model class."""

from __future__ import annotations

from torch import nn

from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.baselines import DCNv2, DeepFM
from adaptive_loop.model.config import MODEL_NAMES, ModelConfig
from adaptive_loop.model.loopctr import LoopCTR, StackCTR

_MODELS: dict[str, type[nn.Module]] = {"loopctr": LoopCTR, "stackctr": StackCTR, "deepfm": DeepFM, "dcnv2": DCNv2}


def build_model(config: ModelConfig, spec: FeatureSpec) -> nn.Module:
    """A freshly initialised model (seed torch beforehand for a reproducible init); implements `DepthModel`."""
    if config.name not in _MODELS:
        raise ConfigError(f"model.name={config.name!r} is not one of {', '.join(MODEL_NAMES)}")
    return _MODELS[config.name](config, spec)
