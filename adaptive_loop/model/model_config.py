"""`ModelConfig`: the keys every model's config shares, and the checks they share.

A model is one file with its own config dataclass that subclasses `ModelConfig`
(`LoopCTRConfig` in `loopctr_config.py` for LoopCTR and StackCTR, `DeepFMConfig` in
`deepfm.py`, `DCNv2Config` in `dcnv2.py`); `adaptive_loop.model.registry` maps `model.name`
to the pair and is the one list of names. The LoopCTR paper leaves most sizes and several
mechanisms unpublished (see docs LOOPCTR.md): every such point is a field whose help text
says "[ours]" when the value is our choice rather than the paper's.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from adaptive_loop.config_loading import from_dict
from adaptive_loop.errors import ConfigError

DENSE_INITS = ("torch", "xavier_normal")


@dataclass
class ModelConfig:
    """Keys of every model: `name` picks the model (`adaptive_loop.model.registry`)."""

    name: str = field(default="loopctr", metadata={"help": "Model name; the other keys are that model's."})
    embed_dim: int = field(default=16, metadata={"help": "Width e of every embedding table [ours]."})
    train_loops: int = field(default=0, metadata={"help": "L: loop steps used in training (0 = no loop)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout in training only [ours]."})
    embed_init_std: float = field(
        default=0.05,
        metadata={"help": "Std of the normal init of embedding tables (and numeric field vectors) [ours]; FuxiCTR's default is 1e-4."},
    )
    batch_norm: bool = field(
        default=False,
        metadata={"help": "MLP towers (LoopCTR's Exit tower, the baselines' deep parts) as Linear -> BatchNorm -> ReLU -> "
                  "Dropout (FuxiCTR's MLP_Block); off: no batch norm."},
    )
    dense_init: str = field(
        default="torch",
        metadata={"help": "Init of the MLP tower, cross and head linears: 'torch' (PyTorch default, Kaiming-uniform) or "
                  "'xavier_normal' (FuxiCTR: Xavier-normal weights, zero biases). Transformer projections keep init_std."},
    )

    #: The preset `tiny()` starts from: a very small model for tests and notebooks.
    TINY: ClassVar[dict[str, Any]] = {"embed_dim": 4}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid key and value."""
        if self.embed_dim < 1:
            raise ConfigError(f"model.embed_dim must be >= 1, got {self.embed_dim!r}")
        if self.train_loops < 0:
            raise ConfigError(f"model.train_loops must be >= 0, got {self.train_loops!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.embed_init_std > 0:
            raise ConfigError(f"model.embed_init_std must be > 0, got {self.embed_init_std!r}")
        check_choice("dense_init", self.dense_init, DENSE_INITS)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "ModelConfig":
        """Build from a mapping; unknown keys and wrong types raise `ConfigError` with the closest valid key."""
        return from_dict(cls, raw, "model")

    @classmethod
    def tiny(cls, **overrides: Any) -> "ModelConfig":
        """The class's very small preset (`TINY`) for tests and notebooks; `overrides` replace fields."""
        return cls.from_dict({**cls.TINY, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (`dataclasses.asdict`)."""
        return dataclasses.asdict(self)


def check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise `ConfigError` unless `value` is one of `allowed`, naming the closest choice."""
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.{key}={value!r} is not one of {', '.join(allowed)}{hint}")


def check_widths(config: ModelConfig, *keys: str) -> None:
    """Raise `ConfigError` unless every layer width listed under `keys` is >= 1."""
    for key in keys:
        if any(int(w) < 1 for w in getattr(config, key)):
            raise ConfigError(f"model.{key} widths must be >= 1, got {getattr(config, key)!r}")
