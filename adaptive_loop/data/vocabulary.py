"""A fitted vocabulary: known string values -> ids 2.., with 0 = missing and 1 = OOV.

Values are ordered by training frequency (then by value, for determinism), so id 2 is the
most common value; values seen fewer than `min_count` times are left out and therefore map
to OOV, which also gives the OOV embedding real training signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from adaptive_loop.data.spec import OOV_ID, PAD_ID

N_RESERVED = 2


def count_values(tokens: pa.Array) -> pd.Series:
    """Counts of the non-null string values in `tokens` (index = value)."""
    if len(tokens) == 0:
        return pd.Series([], dtype=np.int64)
    counted = pc.value_counts(tokens.drop_null())
    values = counted.field("values").to_numpy(zero_copy_only=False)
    counts = counted.field("counts").to_numpy(zero_copy_only=False).astype(np.int64)
    return pd.Series(counts, index=pd.Index(values, dtype=object))


@dataclass
class Vocabulary:
    """Known values in id order (value `values[k]` has id `k + 2`)."""

    values: list[str]
    min_count: int = 1
    _index: pd.Index | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(cls, counts: pd.Series, min_count: int = 1) -> "Vocabulary":
        """Keep values with count >= `min_count`, most frequent first."""
        if len(counts) == 0:
            return cls(values=[], min_count=min_count)
        totals = counts.groupby(level=0).sum()
        kept = totals[totals >= min_count]
        frame = pd.DataFrame({"value": kept.index.astype(str), "count": kept.to_numpy()})
        frame = frame.sort_values(["count", "value"], ascending=[False, True], kind="mergesort")
        return cls(values=frame["value"].tolist(), min_count=min_count)

    @property
    def size(self) -> int:
        """Number of ids including the two reserved ones (what an embedding table needs)."""
        return len(self.values) + N_RESERVED

    @property
    def index(self) -> pd.Index:
        if self._index is None:
            self._index = pd.Index(np.asarray(self.values, dtype=object), dtype=object)
        return self._index

    def lookup(self, tokens: pa.Array) -> np.ndarray:
        """Ids for string tokens: null -> 0 (missing), unknown -> 1 (OOV), known -> 2.."""
        n = len(tokens)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        encoded = pc.dictionary_encode(tokens)
        dictionary = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
        positions = self.index.get_indexer(dictionary) if len(self.values) else np.full(len(dictionary), -1)
        mapped = np.where(positions >= 0, positions + N_RESERVED, OOV_ID).astype(np.int64)
        indices = encoded.indices
        valid = indices.is_valid().to_numpy(zero_copy_only=False)
        idx = pc.fill_null(indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        out = mapped[idx] if len(mapped) else np.full(n, OOV_ID, dtype=np.int64)
        out[~valid] = PAD_ID
        return out
