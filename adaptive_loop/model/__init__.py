"""Depth models: LoopCTR, StackCTR and the DeepFM / DCNv2 baselines behind one `DepthModel` API.

A model is one file plus its config dataclass: `loopctr.py` with `loopctr_config.py`
(LoopCTR, StackCTR), `deepfm.py`, `dcnv2.py` (on `field_baseline.py`). `registry.py` maps
`model.name` to the pair and is the one list of names; `model_config.py` holds the keys
every config shares. The building blocks (entry, loop block, exit, attention, MoE,
hyper-connections, tokens, ...) are one concept per file; `halting.py` is the small halting
head learned controllers train; `flops.py` counts FLOPs analytically.
"""

from adaptive_loop.model.api import DepthModel, DepthOutputs, FlopsBreakdown, LoopState
from adaptive_loop.model.dcnv2 import DCNv2, DCNv2Config
from adaptive_loop.model.deepfm import DeepFM, DeepFMConfig
from adaptive_loop.model.flops import count_parameters
from adaptive_loop.model.loopctr import LoopCTR, SandwichState, StackCTR
from adaptive_loop.model.loopctr_config import LoopCTRConfig
from adaptive_loop.model.model_config import ModelConfig
from adaptive_loop.model.registry import MODEL_NAMES, build_model, config_class, config_from_dict, own_keys, tiny_config

__all__ = [
    "DCNv2",
    "DCNv2Config",
    "DeepFM",
    "DeepFMConfig",
    "DepthModel",
    "DepthOutputs",
    "FlopsBreakdown",
    "LoopCTR",
    "LoopCTRConfig",
    "LoopState",
    "MODEL_NAMES",
    "ModelConfig",
    "SandwichState",
    "StackCTR",
    "build_model",
    "config_class",
    "config_from_dict",
    "count_parameters",
    "own_keys",
    "tiny_config",
]
