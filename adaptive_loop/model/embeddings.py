"""Embedding tables of a `FeatureSpec`: one table per `table` name, shared by the fields using it.

A candidate `item_id` field and an `item_id` history with the same `vocab_name` look up the
same table, so the history and the candidate live in one embedding space. Id 0 (padding /
missing) has an ordinary learned row; padding is removed by masks downstream, never by the
table.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptive_loop.data.spec import PAD_ID, FeatureSpec


class FeatureEmbeddings(nn.Module):
    """Per-table embeddings with lookups for categorical columns and sequences.

    `holds_embeddings` marks every parameter here as an embedding for the training's
    embedding penalty (`adaptive_loop.training.optim.split_parameters`).
    """

    holds_embeddings = True

    def __init__(self, spec: FeatureSpec, embed_dim: int, init_std: float) -> None:
        super().__init__()
        sizes: dict[str, int] = {}
        for feat in list(spec.categorical) + list(spec.sequences):
            sizes[feat.table] = max(sizes.get(feat.table, 0), int(feat.vocab_size))
        self.table_names = list(sizes)
        self.embed_dim = embed_dim
        self.tables = nn.ModuleList(nn.Embedding(sizes[name], embed_dim) for name in self.table_names)
        for table in self.tables:
            nn.init.normal_(table.weight, std=init_std)  # e_v ~ N(0, init_std^2) [ours]
        index = {name: i for i, name in enumerate(self.table_names)}
        # Categorical columns grouped by table: one lookup per table, then one reorder.
        by_table: dict[int, list[int]] = {}
        for col, feat in enumerate(spec.categorical):
            by_table.setdefault(index[feat.table], []).append(col)
        self._cat_tables = list(by_table)
        for i, cols in enumerate(by_table.values()):
            self.register_buffer(f"_cat_cols_{i}", torch.tensor(cols, dtype=torch.long), persistent=False)
        order = [c for cols in by_table.values() for c in cols]
        inverse = [0] * len(order)
        for pos, col in enumerate(order):
            inverse[col] = pos
        self.register_buffer("_cat_inverse", torch.tensor(inverse, dtype=torch.long), persistent=False)
        self._seq_table = {s.name: index[s.table] for s in spec.sequences}
        self.n_categorical = len(spec.categorical)

    def categorical(self, cat: torch.Tensor) -> torch.Tensor:
        """[B, n_cat] ids -> [B, n_cat, e] embeddings, in spec column order."""
        if self.n_categorical == 0:
            return cat.new_zeros((cat.shape[0], 0, self.embed_dim), dtype=torch.float32)
        parts = [
            self.tables[t](cat.index_select(1, getattr(self, f"_cat_cols_{i}"))) for i, t in enumerate(self._cat_tables)
        ]
        return torch.cat(parts, dim=1).index_select(1, self._cat_inverse)

    def sequence(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        """[B, len] ids of sequence `name` -> [B, len, e]."""
        return self.tables[self._seq_table[name]](ids)

    def pooled(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        """Mean of the non-padding embeddings of a sequence: [B, len] -> [B, e] (zeros when empty)."""
        return masked_mean(self.sequence(name, ids), ids != PAD_ID)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` [B, n, e] over positions where `mask` [B, n] is true; zeros where none is."""
    weights = mask.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
