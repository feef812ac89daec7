"""What the model needs to know about encoded features: names, kinds and vocabulary sizes.

The data side (schema + fitted encoders) produces a `FeatureSpec`; the model side builds
its embeddings and tokens from it. Neither side looks at the other's internals.

Id conventions for every categorical and sequence vocabulary: 0 = padding / missing,
1 = out-of-vocabulary (unseen or rarer than min_count), 2.. = known values. So
`vocab_size` includes those two reserved ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PAD_ID = 0
OOV_ID = 1


@dataclass(frozen=True)
class CategoricalFeature:
    """One categorical field, encoded as one id per sample."""

    name: str
    vocab_size: int
    vocab_name: str = ""  # fields with the same vocab_name share one embedding table

    @property
    def table(self) -> str:
        return self.vocab_name or self.name


@dataclass(frozen=True)
class NumericFeature:
    """One numeric field, standardised on the training split; NaN is filled and flagged."""

    name: str


@dataclass(frozen=True)
class SequenceFeature:
    """A variable-length list of ids per sample, padded with 0 to `max_len`.

    `pooled=False` sequences become the model's sequence tokens (behaviour history; all such
    sequences are aligned event by event and must share `max_len`). `pooled=True`
    sequences (e.g. a multi-valued genre field) are mean-pooled into one global token input.
    """

    name: str
    vocab_size: int
    max_len: int
    vocab_name: str = ""
    pooled: bool = False

    @property
    def table(self) -> str:
        return self.vocab_name or self.name


@dataclass(frozen=True)
class FeatureSpec:
    """The encoded feature layout of a dataset, in column order of `Batch` tensors."""

    categorical: tuple[CategoricalFeature, ...] = ()
    numeric: tuple[NumericFeature, ...] = ()
    sequences: tuple[SequenceFeature, ...] = ()
    token_groups: tuple[tuple[str, ...], ...] | None = None  # suggested global tokens (field names)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def token_sequences(self) -> tuple[SequenceFeature, ...]:
        return tuple(s for s in self.sequences if not s.pooled)

    @property
    def pooled_sequences(self) -> tuple[SequenceFeature, ...]:
        return tuple(s for s in self.sequences if s.pooled)

    def field_names(self) -> list[str]:
        """Every feature name: categorical, then numeric, then sequence fields."""
        return [f.name for f in self.categorical] + [f.name for f in self.numeric] + [s.name for s in self.sequences]

    def to_dict(self) -> dict[str, Any]:
        """The spec as nested plain dicts (inverse of `from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "FeatureSpec":
        """Rebuild a spec written by `to_dict` (missing sections default to empty)."""
        groups = raw.get("token_groups")
        return cls(
            categorical=tuple(CategoricalFeature(**f) for f in raw.get("categorical", ())),
            numeric=tuple(NumericFeature(**f) for f in raw.get("numeric", ())),
            sequences=tuple(SequenceFeature(**f) for f in raw.get("sequences", ())),
            token_groups=None if groups is None else tuple(tuple(g) for g in groups),
            extras=dict(raw.get("extras", {})),
        )
