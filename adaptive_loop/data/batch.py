"""`EncodedData` (numpy, a whole split) and `Batch` (torch, what the model consumes).

Both keep features in the column order of the `FeatureSpec`:
- `cat`: int64 [n, n_categorical]
- `num`: float32 [n, n_numeric]
- `seq`: name -> int64 [n, max_len] (0 = padding, left-aligned)
plus `labels` float32 [n], `ids` int64 [n], optional `groups` int64 [n], and `extras`
(name -> [n] numpy arrays carried into the trace, e.g. synthetic `needed_depth`).
`concat_encoded` and `rebatch` join and regroup encoded chunks (streamed data, scoring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from adaptive_loop.errors import DataError


@dataclass
class EncodedData:
    """One split after encoding, as numpy arrays."""

    cat: np.ndarray
    num: np.ndarray
    seq: dict[str, np.ndarray]
    labels: np.ndarray
    ids: np.ndarray
    groups: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, rows: np.ndarray | slice) -> "EncodedData":
        """The rows `rows` (index array or slice) of every array, extras and groups included."""
        return EncodedData(
            cat=self.cat[rows],
            num=self.num[rows],
            seq={k: v[rows] for k, v in self.seq.items()},
            labels=self.labels[rows],
            ids=self.ids[rows],
            groups=None if self.groups is None else self.groups[rows],
            extras={k: v[rows] for k, v in self.extras.items()},
        )

    def to_batch(self, rows: np.ndarray | slice | None = None, device: torch.device | str = "cpu") -> "Batch":
        """A torch `Batch` of `rows` (all rows when None) on `device`; ids, groups and extras are not carried over."""
        part = self if rows is None else self.subset(rows)
        return Batch(
            cat=torch.from_numpy(np.ascontiguousarray(part.cat, dtype=np.int64)).to(device),
            num=torch.from_numpy(np.ascontiguousarray(part.num, dtype=np.float32)).to(device),
            seq={k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)).to(device) for k, v in part.seq.items()},
            labels=torch.from_numpy(np.ascontiguousarray(part.labels, dtype=np.float32)).to(device),
        )

    def iter_batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        device: torch.device | str = "cpu",
    ) -> Iterator["Batch"]:
        """Yield `Batch`es; with `shuffle`, the order is fixed by `seed`."""
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            yield self.to_batch(order[start : start + batch_size], device=device)


@dataclass
class Batch:
    """A batch of encoded features as torch tensors on one device."""

    cat: torch.Tensor
    num: torch.Tensor
    seq: dict[str, torch.Tensor]
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, rows: torch.Tensor | slice) -> "Batch":
        """The rows `rows` (an index or boolean tensor, or a slice: a view) of every tensor, on the same device."""
        return Batch(
            cat=self.cat[rows],
            num=self.num[rows],
            seq={k: v[rows] for k, v in self.seq.items()},
            labels=self.labels[rows],
        )

    def to(self, device: torch.device | str) -> "Batch":
        """A copy of the batch with every tensor moved to `device`."""
        return Batch(
            cat=self.cat.to(device),
            num=self.num.to(device),
            seq={k: v.to(device) for k, v in self.seq.items()},
            labels=self.labels.to(device),
        )


def rebatch(chunks: Iterable[EncodedData], batch_size: int) -> Iterator[EncodedData]:
    """Regroup a stream of encoded chunks into batches of exactly `batch_size` rows (the last may be short)."""
    pending: list[EncodedData] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held < batch_size:
            continue
        merged = concat_encoded(pending)
        full = len(merged) // batch_size
        for b in range(full):
            yield merged.subset(slice(b * batch_size, (b + 1) * batch_size))
        rest = merged.subset(slice(full * batch_size, len(merged)))
        pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield concat_encoded(pending)


def concat_encoded(parts: list[EncodedData], encoder: Any = None) -> EncodedData:
    """Row-wise concatenation of encoded chunks (an empty split gives zero rows, laid out by `encoder.feature_spec()`)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        if encoder is None:
            raise DataError("no rows to concatenate")
        spec = encoder.feature_spec()
        return EncodedData(
            cat=np.zeros((0, len(spec.categorical)), np.int64), num=np.zeros((0, len(spec.numeric)), np.float32),
            seq={s.name: np.zeros((0, s.max_len), np.int64) for s in spec.sequences},
            labels=np.zeros(0, np.float32), ids=np.zeros(0, np.int64),
        )
    first = parts[0]
    return EncodedData(
        cat=np.concatenate([p.cat for p in parts]),
        num=np.concatenate([p.num for p in parts]),
        seq={k: np.concatenate([p.seq[k] for p in parts]) for k in first.seq},
        labels=np.concatenate([p.labels for p in parts]),
        ids=np.concatenate([p.ids for p in parts]),
        groups=None if first.groups is None else np.concatenate([p.groups for p in parts]),
        extras={k: np.concatenate([p.extras[k] for p in parts]) for k in first.extras},
    )
