"""The depth trace: the contract between a trained model and everything that studies depth.

A trace holds, for every sample of one split, the model's logit after each loop depth
0..K, optional per-depth hidden summaries, and the FLOPs of each model part. Oracle
analysis and controller research run on a trace in seconds, without torch.

On-disk schema (one parquet file, one row per sample)
------------------------------------------------------
| column            | type                     | meaning                                        |
|-------------------|--------------------------|------------------------------------------------|
| `id`              | int64                    | sample id (row index in the split, or given)   |
| `label`           | float32 (0/1)            | click label                                    |
| `group`           | int64, optional          | group key for gAUC (e.g. user)                 |
| `logit_{k}`       | float32, k = 0..K        | logit after k loop steps                        |
| `hidden_{k}`      | fixed list<float32>[h]   | optional hidden summary after k loop steps      |
| `feat_{name}`     | numeric, optional        | side columns known before looping (field ids,   |
|                   |                          | sequence length, synthetic `needed_depth`, ...) |

The parquet schema metadata key `adaptive_loop.trace` holds `TraceMeta` as JSON:
FLOPs per sample of Entry, one Loop step and one Exit evaluation, K, the number of loops
the model was trained with, the hidden size, the FLOPs of one hidden summary, the dataset, the split and the model config.
`load_trace` validates all of it and raises `TraceError` naming the file and problem.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_loop.errors import TraceError
from adaptive_loop.io import write_with

TRACE_FORMAT_VERSION = 1
_META_KEY = b"adaptive_loop.trace"


@dataclass(frozen=True)
class TraceMeta:
    """What a consumer needs to know about the model that produced a trace.

    FLOPs are per sample, counting a multiply-add as 2 FLOPs.
    """

    flops_entry: float
    flops_loop: float
    flops_exit: float
    max_depth: int
    train_loops: int
    hidden_dim: int | None = None
    flops_summary: float = 0.0  # one hidden summary; paid by controllers that read summaries
    dataset: str = ""
    split: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)
    format_version: int = TRACE_FORMAT_VERSION

    def to_json(self) -> str:
        """The metadata as a JSON string (sorted keys), as stored in the trace parquet's schema metadata."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "trace") -> "TraceMeta":
        """Parse metadata written by `to_json`.

        Raises `TraceError` naming `source` for invalid JSON, missing FLOPs/depth keys or
        another format version; unknown keys are ignored.
        """
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{source}: trace metadata is not valid JSON ({exc})") from None
        known = set(cls.__dataclass_fields__)
        missing = {"flops_entry", "flops_loop", "flops_exit", "max_depth", "train_loops"} - set(raw)
        if missing:
            raise TraceError(f"{source}: trace metadata lacks {sorted(missing)}")
        version = raw.get("format_version", TRACE_FORMAT_VERSION)
        if version != TRACE_FORMAT_VERSION:
            raise TraceError(f"{source}: trace format version {version} is not supported (expected {TRACE_FORMAT_VERSION})")
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class DepthTrace:
    """Per-sample, per-depth model outputs for one split.

    Attributes:
        ids: int64 [n] sample ids.
        labels: float32 [n] 0/1 labels.
        logits: float32 [n, K+1] logit after 0..K loop steps.
        meta: model FLOPs and provenance.
        groups: optional int64 [n] group keys (gAUC).
        hidden: optional float32 [n, K+1, h] per-depth hidden summaries.
        features: optional side columns [n] known before looping, by name.
    """

    ids: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    meta: TraceMeta
    groups: np.ndarray | None = None
    hidden: np.ndarray | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        self.logits = np.asarray(self.logits, dtype=np.float32)
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
        if self.hidden is not None:
            self.hidden = np.asarray(self.hidden, dtype=np.float32)
        self.features = {name: np.asarray(col) for name, col in self.features.items()}
        self.validate()

    # ----------------------------------------------------------------- properties
    @property
    def n_samples(self) -> int:
        return int(self.logits.shape[0])

    @property
    def n_depths(self) -> int:
        """Number of depths K+1 (depths 0..K)."""
        return int(self.logits.shape[1])

    @property
    def max_depth(self) -> int:
        return self.n_depths - 1

    def probs(self) -> np.ndarray:
        """Sigmoid of the logits, [n, K+1] float64."""
        from adaptive_loop.metrics import sigmoid

        return sigmoid(self.logits)

    def __len__(self) -> int:
        return self.n_samples

    # ----------------------------------------------------------------- operations
    def validate(self, source: str = "trace") -> None:
        """Check shapes and values; raise `TraceError` naming the problem."""
        if self.logits.ndim != 2 or self.logits.shape[1] < 1:
            raise TraceError(f"{source}: logits must be [n, K+1], got shape {self.logits.shape}")
        n = self.logits.shape[0]
        for name, arr in (("ids", self.ids), ("labels", self.labels)):
            if arr.shape != (n,):
                raise TraceError(f"{source}: {name} has shape {arr.shape}, expected ({n},)")
        if self.groups is not None and self.groups.shape != (n,):
            raise TraceError(f"{source}: groups has shape {self.groups.shape}, expected ({n},)")
        if self.hidden is not None and (self.hidden.ndim != 3 or self.hidden.shape[:2] != self.logits.shape):
            raise TraceError(f"{source}: hidden has shape {self.hidden.shape}, expected ({n}, {self.n_depths}, h)")
        for name, col in self.features.items():
            if col.shape != (n,):
                raise TraceError(f"{source}: feature column {name!r} has shape {col.shape}, expected ({n},)")
        if self.meta.max_depth != self.n_depths - 1:
            raise TraceError(
                f"{source}: metadata says K={self.meta.max_depth} but the trace has {self.n_depths} depth columns"
            )
        if n and not np.all(np.isfinite(self.logits)):
            bad = int(np.argwhere(~np.isfinite(self.logits))[0][0])
            raise TraceError(f"{source}: non-finite logit for sample id {int(self.ids[bad])}")
        if n and not np.all((self.labels == 0) | (self.labels == 1)):
            raise TraceError(f"{source}: labels must be 0 or 1")
        for name in ("flops_entry", "flops_loop", "flops_exit"):
            if not float(getattr(self.meta, name)) >= 0:
                raise TraceError(f"{source}: metadata {name} must be a non-negative number")

    def logits_at(self, depths: np.ndarray) -> np.ndarray:
        """The logit each sample has at its own depth (`depths` int [n]), float64 [n]."""
        d = np.asarray(depths, dtype=np.int64)
        return self.logits[np.arange(self.n_samples), d].astype(np.float64)

    def subset(self, rows: np.ndarray | slice) -> "DepthTrace":
        """A trace of the selected rows (index array, boolean mask or slice)."""
        return DepthTrace(
            ids=self.ids[rows],
            labels=self.labels[rows],
            logits=self.logits[rows],
            meta=self.meta,
            groups=None if self.groups is None else self.groups[rows],
            hidden=None if self.hidden is None else self.hidden[rows],
            features={k: v[rows] for k, v in self.features.items()},
        )

    def truncate_depth(self, max_depth: int) -> "DepthTrace":
        """The same trace restricted to depths 0..max_depth."""
        if not 0 <= max_depth <= self.max_depth:
            raise TraceError(f"cannot truncate a trace with K={self.max_depth} to depth {max_depth}")
        meta = TraceMeta(**{**asdict(self.meta), "max_depth": max_depth})
        return DepthTrace(
            ids=self.ids,
            labels=self.labels,
            logits=self.logits[:, : max_depth + 1],
            meta=meta,
            groups=self.groups,
            hidden=None if self.hidden is None else self.hidden[:, : max_depth + 1],
            features=dict(self.features),
        )


# --------------------------------------------------------------------------- compatibility
def check_same_model(meta: TraceMeta, reference: TraceMeta, what: str = "trace", reference_name: str = "reference") -> None:
    """Raise `TraceError` unless `meta` and `reference` describe the same model.

    Compared: FLOPs of Entry, Loop and Exit (they fix every cost), the trained loops and,
    when both record one, the model config keys both hold (traces written before each
    model had its own config record every model's keys). A controller calibrated on one
    model's trace and applied to another's would meet its budget in the wrong currency.
    """
    problems = []
    for name in ("flops_entry", "flops_loop", "flops_exit"):
        a, b = float(getattr(meta, name)), float(getattr(reference, name))
        if not np.isclose(a, b, rtol=1e-9, atol=0.0):
            problems.append(f"{name} {a:.6g} vs {b:.6g}")
    if meta.train_loops != reference.train_loops:
        problems.append(f"train_loops {meta.train_loops} vs {reference.train_loops}")
    if meta.model_config and reference.model_config:
        keys = sorted(k for k in set(meta.model_config) & set(reference.model_config)
                      if meta.model_config[k] != reference.model_config[k])
        if keys:
            problems.append(f"model config keys {keys[:5]}")
    if problems:
        raise TraceError(
            f"{what} and {reference_name} come from different models ({'; '.join(problems)}); use traces "
            "written by the same run"
        )


def align_ids(trace: DepthTrace, ids: np.ndarray, source: str = "per-sample table") -> np.ndarray:
    """Row positions in `trace` of each of `ids` (e.g. oracle labels joined back to a trace).

    Raises `TraceError` naming how many and which ids the trace lacks, or which ids repeat,
    instead of silently joining rows of different samples.
    """
    wanted = np.asarray(ids, dtype=np.int64)
    order = np.argsort(trace.ids, kind="stable")
    sorted_ids = trace.ids[order]
    if sorted_ids.size > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
        dup = int(sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][0])
        raise TraceError(f"trace ids are not unique (id {dup} repeats); cannot join {source} by id")
    pos = np.searchsorted(sorted_ids, wanted)
    pos_clipped = np.minimum(pos, max(sorted_ids.size - 1, 0))
    found = (pos < sorted_ids.size) & (sorted_ids[pos_clipped] == wanted) if sorted_ids.size else np.zeros(wanted.size, bool)
    if not found.all():
        missing = wanted[~found]
        raise TraceError(
            f"{source}: {missing.size} of {wanted.size} ids are not in the trace (e.g. {missing[:3].tolist()}); "
            "it belongs to another split or run"
        )
    return order[pos]


# --------------------------------------------------------------------------- disk
def save_trace(trace: DepthTrace, path: str | os.PathLike[str]) -> Path:
    """Write a trace as parquet with its metadata, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    trace.validate()
    columns: dict[str, pa.Array] = {"id": pa.array(trace.ids), "label": pa.array(trace.labels)}
    if trace.groups is not None:
        columns["group"] = pa.array(trace.groups)
    for k in range(trace.n_depths):
        columns[f"logit_{k}"] = pa.array(trace.logits[:, k])
    if trace.hidden is not None:
        h = trace.hidden.shape[2]
        for k in range(trace.n_depths):
            flat = pa.array(np.ascontiguousarray(trace.hidden[:, k, :]).reshape(-1))
            columns[f"hidden_{k}"] = pa.FixedSizeListArray.from_arrays(flat, h)
    for name, col in trace.features.items():
        columns[f"feat_{name}"] = pa.array(col)
    table = pa.table(columns)
    table = table.replace_schema_metadata({_META_KEY: trace.meta.to_json().encode()})
    return write_with(path, lambda tmp: pq.write_table(table, tmp))


def load_trace(path: str | os.PathLike[str]) -> DepthTrace:
    """Read and validate a trace written by `save_trace`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = Path(path)
    if not source.is_file():
        raise TraceError(f"trace file {source} does not exist (write one with `adaptive-loop trace`)")
    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"trace file {source} is not a readable parquet file ({str(exc).splitlines()[0]})") from None
    metadata = table.schema.metadata or {}
    if _META_KEY not in metadata:
        raise TraceError(f"trace file {source} has no adaptive-loop metadata: it was not written by `save_trace`")
    meta = TraceMeta.from_json(metadata[_META_KEY], source=str(source))
    names = set(table.column_names)
    for required in ("id", "label"):
        if required not in names:
            raise TraceError(f"trace file {source} lacks the column {required!r}")
    depth_cols = [f"logit_{k}" for k in range(meta.max_depth + 1)]
    missing = [c for c in depth_cols if c not in names]
    if missing:
        raise TraceError(f"trace file {source} lacks logit columns {missing} for K={meta.max_depth}")
    logits = np.stack([table.column(c).to_numpy() for c in depth_cols], axis=1)
    hidden = None
    if "hidden_0" in names:
        parts = []
        for k in range(meta.max_depth + 1):
            col = table.column(f"hidden_{k}").combine_chunks()
            width = col.type.list_size
            parts.append(col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width))
        hidden = np.stack(parts, axis=1)
    features = {
        name[len("feat_"):]: table.column(name).to_numpy() for name in table.column_names if name.startswith("feat_")
    }
    try:
        return DepthTrace(
            ids=table.column("id").to_numpy(),
            labels=table.column("label").to_numpy(),
            logits=logits,
            meta=meta,
            groups=table.column("group").to_numpy() if "group" in names else None,
            hidden=hidden,
            features=features,
        )
    except TraceError as exc:
        raise TraceError(f"{source}: {exc}") from None
