"""Small synthetic `FeatureSpec`s and random `Batch`es for tests, notebooks and speed checks."""

from __future__ import annotations

import torch

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature


def toy_spec(
    n_categorical: int = 6,
    vocab: int = 50,
    n_numeric: int = 2,
    history: int = 8,
    pooled: bool = True,
    token_groups: tuple[tuple[str, ...], ...] | None = None,
) -> FeatureSpec:
    """Categorical fields c0.., the last one the candidate `item` (sharing its table with the `hist`
    history of length `history`, 0 = no history), numeric fields n0.., and optionally a pooled `genre`."""
    cats = [CategoricalFeature(f"c{i}", vocab) for i in range(max(n_categorical - 1, 0))]
    if n_categorical > 0:
        cats.append(CategoricalFeature("item", vocab, vocab_name="item"))
    seqs: list[SequenceFeature] = []
    if history > 0:
        seqs.append(SequenceFeature("hist", vocab, history, vocab_name="item"))
        seqs.append(SequenceFeature("hist_cat", 12, history))
    if pooled:
        seqs.append(SequenceFeature("genre", 10, 3, pooled=True))
    return FeatureSpec(
        categorical=tuple(cats),
        numeric=tuple(NumericFeature(f"n{i}") for i in range(n_numeric)),
        sequences=tuple(seqs),
        token_groups=token_groups,
    )


def random_batch(spec: FeatureSpec, batch_size: int, seed: int = 0, min_history: int = 0) -> Batch:
    """Random ids (padding included; every history length from `min_history` up occurs), N(0, 1) numerics."""
    g = torch.Generator().manual_seed(seed)
    b = batch_size
    cat = (
        torch.stack([torch.randint(0, f.vocab_size, (b,), generator=g) for f in spec.categorical], dim=1)
        if spec.categorical
        else torch.zeros(b, 0, dtype=torch.long)
    )
    seq: dict[str, torch.Tensor] = {}
    lengths: dict[int, torch.Tensor] = {}
    for s in spec.sequences:
        key = s.max_len if not s.pooled else -s.max_len  # aligned token sequences share their lengths
        if key not in lengths:
            lengths[key] = torch.randint(min(min_history, s.max_len), s.max_len + 1, (b,), generator=g)
        ids = torch.randint(2, s.vocab_size, (b, s.max_len), generator=g)
        ids[torch.arange(s.max_len)[None, :] >= lengths[key][:, None]] = 0
        seq[s.name] = ids
    return Batch(
        cat=cat,
        num=torch.randn(b, len(spec.numeric), generator=g),
        seq=seq,
        labels=torch.randint(0, 2, (b,), generator=g).float(),
    )
