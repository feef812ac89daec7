"""Depth models: LoopCTR, StackCTR and the DeepFM / DCNv2 baselines behind one `DepthModel` API."""

from adaptive_loop.model.api import DepthModel, DepthOutputs, FlopsBreakdown, LoopState
from adaptive_loop.model.baselines import DCNv2, DeepFM
from adaptive_loop.model.config import ModelConfig
from adaptive_loop.model.factory import build_model
from adaptive_loop.model.flops import count_parameters
from adaptive_loop.model.loopctr import LoopCTR, SandwichState, StackCTR

__all__ = [
    "DCNv2",
    "DeepFM",
    "DepthModel",
    "DepthOutputs",
    "FlopsBreakdown",
    "LoopCTR",
    "LoopState",
    "ModelConfig",
    "SandwichState",
    "StackCTR",
    "build_model",
    "count_parameters",
]
