"""What a learned controller may read about a sample, and what reading it costs.

Side columns of a trace (`trace.features`) are known before looping: field ids, sequence
lengths, and so on. Some traces also carry **ground truth** that no deployed controller can
see: the synthetic generator's `needed_depth` (and its `true_prob`). Those columns are never
controller inputs: `side_feature_names` drops them, and naming one explicitly is an error.

Up-front controllers (LightGBM depth predictor, budgeted allocator) decide before any loop
step, from the side columns plus, optionally, the depth-0 prediction and the depth-0 hidden
summary. `UpfrontFeatures` builds that matrix the same way from a whole trace and from an
engine's `StepView`, and prices it: reading the summary costs `meta.flops_summary`, each
derived column (|z_0|) costs one FLOP, copying raw inputs is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from adaptive_loop.errors import ConfigError, TraceError
from adaptive_loop.trace import DepthTrace

#: Columns that hold ground truth about the sample (synthetic data) or its label: never inputs.
GROUND_TRUTH_FEATURES = frozenset({"needed_depth", "true_prob", "label", "labels", "click"})


def side_feature_names(
    available: Sequence[str], include: Sequence[str] | str | None = None, exclude: Sequence[str] = (),
    owner: str = "controller",
) -> list[str]:
    """The side columns a controller reads: `include` (or every available column; a comma-separated
    string works too) minus ground truth and `exclude`, sorted. Naming a ground-truth column is a
    `ConfigError`."""
    if isinstance(include, str):  # "a,b" from a command line `--param features=a,b`
        include = [part.strip() for part in include.split(",") if part.strip()]
    if include is not None:
        leaked = sorted(set(include) & GROUND_TRUTH_FEATURES)
        if leaked:
            raise ConfigError(
                f"{owner}: feature(s) {leaked} are ground truth (known only to the data generator or the label) "
                f"and can never be controller inputs; remove them from the feature list"
            )
        missing = sorted(set(include) - set(available))
        if missing:
            raise TraceError(f"{owner}: the trace has no feature column(s) {missing}; it has {sorted(available)}")
        names = list(include)
    else:
        names = list(available)
    return sorted(n for n in names if n not in GROUND_TRUTH_FEATURES and n not in set(exclude))


def is_id_column(name: str) -> bool:
    """Encoded categorical field ids (`id_<field>`), written by `adaptive_loop.trace_builder.side_features`."""
    return name.startswith("id_")


@dataclass(frozen=True)
class UpfrontFeatures:
    """The up-front feature layout a controller was fitted with.

    Columns, in order: side columns `side`, then `z0` and `abs_z0` (when `use_logit`), then
    `h0_0 .. h0_{h-1}` (when `use_hidden`).
    """

    side: tuple[str, ...]
    use_logit: bool
    use_hidden: bool
    hidden_dim: int

    @property
    def names(self) -> list[str]:
        cols = list(self.side)
        if self.use_logit:
            cols += ["z0", "abs_z0"]
        if self.use_hidden:
            cols += [f"h0_{j}" for j in range(self.hidden_dim)]
        return cols

    @property
    def n_columns(self) -> int:
        return len(self.names)

    def flops(self, flops_summary: float) -> float:
        """FLOPs per row of building the matrix (summary read + |z_0|)."""
        return (float(flops_summary) if self.use_hidden else 0.0) + (1.0 if self.use_logit else 0.0)

    @classmethod
    def for_trace(
        cls, trace: DepthTrace, use_logit: bool, use_hidden: bool, include: Sequence[str] | None = None,
        exclude: Sequence[str] = (), owner: str = "controller",
    ) -> "UpfrontFeatures":
        """The layout for `trace`: side columns (per `include`/`exclude`) plus the depth-0 inputs.

        Ground-truth columns are never included. Raises `TraceError` when `use_hidden` is asked
        of a trace without summaries, and `ConfigError` when no input is left.
        """
        if use_hidden and trace.hidden is None:
            raise TraceError(
                f"{owner}: use_hidden=True but the trace has no hidden summaries (write it without --no-hidden, "
                f"or set use_hidden=False)"
            )
        side = side_feature_names(list(trace.features), include, exclude, owner)
        hidden_dim = int(trace.hidden.shape[2]) if (use_hidden and trace.hidden is not None) else 0
        if not side and not use_logit and not use_hidden:
            raise ConfigError(f"{owner}: no inputs left (no side columns, use_logit=False, use_hidden=False)")
        return cls(tuple(side), bool(use_logit), bool(use_hidden), hidden_dim)

    def matrix(
        self, features: Mapping[str, np.ndarray] | None, logits0: np.ndarray | None, hidden0: np.ndarray | None, n: int,
        owner: str = "controller",
    ) -> np.ndarray:
        """float64 [n, n_columns] from side columns, depth-0 logits [n] and depth-0 summaries [n, h]."""
        cols: list[np.ndarray] = []
        feats = features or {}
        for name in self.side:
            if name not in feats:
                raise TraceError(f"{owner}: input column {name!r} is missing from the rows shown (it was fitted with it)")
            col = np.asarray(feats[name])
            if not np.issubdtype(col.dtype, np.number) and col.dtype != bool:
                raise TraceError(f"{owner}: input column {name!r} is not numeric (dtype {col.dtype})")
            cols.append(col.astype(np.float64).reshape(n, 1))
        if self.use_logit:
            if logits0 is None:
                raise ValueError(f"{owner} needs the depth-0 logits (it was fitted with use_logit=True)")
            z = np.asarray(logits0, dtype=np.float64).reshape(n, 1)
            cols += [z, np.abs(z)]
        if self.use_hidden:
            if hidden0 is None:
                raise ValueError(f"{owner} needs the depth-0 hidden summaries (it was fitted with use_hidden=True)")
            h = np.asarray(hidden0, dtype=np.float64)
            if h.shape != (n, self.hidden_dim):
                raise TraceError(f"{owner}: hidden summaries have shape {h.shape}, expected ({n}, {self.hidden_dim})")
            cols.append(h)
        return np.concatenate(cols, axis=1) if cols else np.zeros((n, 0))

    def from_trace(self, trace: DepthTrace, owner: str = "controller") -> np.ndarray:
        """Feature matrix float64 [n, n_columns] of every row of `trace`."""
        return self.matrix(
            trace.features,
            trace.logits[:, 0] if self.use_logit else None,
            trace.hidden[:, 0, :] if (self.use_hidden and trace.hidden is not None) else None,
            trace.n_samples,
            owner,
        )

    def to_dict(self) -> dict:
        """The layout as a JSON-ready dict (inverse of `from_dict`)."""
        return {"side": list(self.side), "use_logit": self.use_logit, "use_hidden": self.use_hidden, "hidden_dim": self.hidden_dim}

    @classmethod
    def from_dict(cls, raw: Mapping) -> "UpfrontFeatures":
        """Rebuild a layout written by `to_dict`."""
        return cls(tuple(raw["side"]), bool(raw["use_logit"]), bool(raw["use_hidden"]), int(raw["hidden_dim"]))
