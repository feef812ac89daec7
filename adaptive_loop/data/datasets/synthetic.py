"""The embedded synthetic CTR dataset: samples that genuinely need different loop depths.

Real CTR data does not tell us which samples are hard, so adaptive-depth controllers cannot be
checked against a ground truth there. This generator draws, for every sample, a needed depth
`d` in 0..3 and makes the label depend on a relation of that many hops, so
`needed_depth` (kept per row as an extra column) is the number of compositional steps the
Bayes-optimal rule takes, not a guess.

Hidden world (fixed by the seed): every item has a category `cat[i]` (balanced over
`n_categories`) and a bias; every user has a segment `seg[u]` and a bias; a random +-1
table `aff[segment, category]`; and a "complement" map `comp` over categories (a single
random cycle, so `comp[c] != c`).

Visible features: user, item, item_cat (the candidate's category), slot, pointer, hour,
device, and `hist_items` (the user's recent items, 4..seq_len of them, sharing the item
vocabulary, not pooled: these are the sequence tokens). hour and device are pure noise.

Per sample, with `fo = (item_bias + user_bias) / sqrt 2` (first-order signal, N(0, 1)) and
`h = hist_items[pointer]` (the history item the pointer field selects):

| d | signal s (in +-1 unless noted)                                   | hops                     |
|---|------------------------------------------------------------------|--------------------------|
| 0 | fo itself (continuous)                                            | field biases only        |
| 1 | aff[seg[user], item_cat]                                          | one pairwise interaction |
| 2 | +1 if cat[item] == cat[h] else -1                                 | pointer -> item -> category, compare |
| 3 | (+1 if cat[item] == comp[cat[h]] else -1) * (+1 if seg[user] even else -1) | ... -> complement -> user parity |

logit = `strength * s` (+ `first_order * fo` for d >= 1, so shallow features help a little
everywhere, as in real data), label ~ Bernoulli(sigmoid(logit)). For d >= 2 half of the
candidates are drawn from the target category so both outcomes are common.

Which regime applies is visible but has to be learnt: `slot` takes 8 values, two per
depth (slot // 2 == d). The Bayes AUC (AUC of the true probabilities, stored in the
`true_prob` column, which is not a feature) is about 0.9 with the defaults. Everything is
vectorised numpy: 1M rows take a few seconds. Split: random 80/10/10, seeded.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from adaptive_loop.data.datasets.base import RawDataset, check_fractions, random_split
from adaptive_loop.data.schema import CategoricalField, DatasetSchema, SequenceField
from adaptive_loop.errors import ConfigError

MIN_HISTORY = 4


def synthetic_schema(seq_len: int) -> DatasetSchema:
    """Schema of the synthetic dataset (label `label`, gAUC group `user`).

    Seven categorical fields and `hist_items` (up to `seq_len`) as sequence tokens.
    """
    return DatasetSchema(
        label="label",
        categorical=tuple(CategoricalField(n) for n in ("user", "item", "item_cat", "slot", "pointer", "hour", "device")),
        sequences=(SequenceField("hist_items", max_len=seq_len, vocab_from="item", pooled=False),),
        group="user",
        token_groups=(("user",), ("item", "item_cat"), ("slot", "pointer"), ("hour", "device")),
    )


def generate_synthetic(
    n_rows: int = 200_000,
    seed: int = 0,
    seq_len: int = 20,
    n_users: int = 2_000,
    n_items: int = 1_000,
    n_categories: int = 8,
    n_segments: int = 8,
    depth_mix: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    strength: float = 2.5,
    first_order: float = 0.3,
    row_seed: int | None = None,
) -> pd.DataFrame:
    """All rows of the synthetic dataset (unsplit), including `needed_depth` and `true_prob`.

    `row_seed` draws the rows from (seed, row_seed) while the hidden world stays that of
    `seed`: chunks with different row seeds are parts of one dataset, so data larger than
    memory can be generated (and written) chunk by chunk.
    """
    mix = np.asarray(depth_mix, dtype=np.float64)
    if mix.shape != (4,) or (mix < 0).any() or mix.sum() <= 0:
        raise ConfigError(f"synthetic: depth_mix must be 4 non-negative weights for depths 0..3, got {list(depth_mix)}")
    if n_rows < 1 or seq_len < MIN_HISTORY or n_users < 1 or n_categories < 2 or n_segments < 2:
        raise ConfigError(
            f"synthetic: need n_rows >= 1, seq_len >= {MIN_HISTORY}, n_users >= 1, n_categories >= 2, n_segments >= 2"
        )
    if n_items < n_categories:
        raise ConfigError(f"synthetic: n_items ({n_items}) must be >= n_categories ({n_categories})")
    world_rng, row_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if row_seed is not None:
        row_rng = np.random.default_rng([seed, row_seed])

    # hidden world
    item_cat = world_rng.permutation(np.arange(n_items) % n_categories)
    item_bias = world_rng.standard_normal(n_items)
    user_seg = world_rng.integers(0, n_segments, n_users)
    user_bias = world_rng.standard_normal(n_users)
    aff = world_rng.choice([-1.0, 1.0], size=(n_segments, n_categories))
    cycle = world_rng.permutation(n_categories)
    comp = np.empty(n_categories, dtype=np.int64)
    comp[cycle] = np.roll(cycle, -1)
    by_cat = np.argsort(item_cat, kind="stable")
    cat_start = np.searchsorted(item_cat[by_cat], np.arange(n_categories))
    cat_count = np.bincount(item_cat, minlength=n_categories)

    # rows
    n = int(n_rows)
    depth = row_rng.choice(4, size=n, p=mix / mix.sum())
    user = row_rng.integers(0, n_users, n)
    slot = 2 * depth + row_rng.integers(0, 2, n)
    hour = row_rng.integers(0, 24, n)
    device = row_rng.integers(0, 4, n)
    lengths = row_rng.integers(MIN_HISTORY, seq_len + 1, n)
    hist = row_rng.integers(0, n_items, (n, seq_len))
    pointer = (row_rng.random(n) * lengths).astype(np.int64)
    pointed = hist[np.arange(n), pointer]

    target = np.where(depth == 3, comp[item_cat[pointed]], item_cat[pointed])
    aim = (depth >= 2) & (row_rng.random(n) < 0.5)
    uniform_item = row_rng.integers(0, n_items, n)
    in_target = by_cat[cat_start[target] + (row_rng.random(n) * cat_count[target]).astype(np.int64)]
    item = np.where(aim, in_target, uniform_item)
    cat = item_cat[item]

    fo = (item_bias[item] + user_bias[user]) / np.sqrt(2.0)
    match = np.where(cat == target, 1.0, -1.0)
    parity = np.where(user_seg[user] % 2 == 0, 1.0, -1.0)
    signal = np.select([depth == 0, depth == 1, depth == 2], [fo, aff[user_seg[user], cat], match], match * parity)
    logit = strength * signal + np.where(depth >= 1, first_order * fo, 0.0)
    prob = 1.0 / (1.0 + np.exp(-logit))
    label = (row_rng.random(n) < prob).astype(np.int64)

    mask = np.arange(seq_len)[None, :] < lengths[:, None]
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    hist_col = pa.ListArray.from_arrays(pa.array(offsets), pa.array(hist[mask]))
    return pd.DataFrame(
        {
            "label": label,
            "user": user,
            "item": item,
            "item_cat": cat,
            "slot": slot,
            "pointer": pointer,
            "hour": hour,
            "device": device,
            "hist_items": pd.arrays.ArrowExtensionArray(hist_col),
            "needed_depth": depth.astype(np.int64),
            "true_prob": prob,
        }
    )


def load_synthetic(
    data_root: object = None,
    n_rows: int = 200_000,
    seed: int = 0,
    seq_len: int = 20,
    n_users: int = 2_000,
    n_items: int = 1_000,
    n_categories: int = 8,
    n_segments: int = 8,
    depth_mix: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    strength: float = 2.5,
    first_order: float = 0.3,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> RawDataset:
    """The synthetic dataset split 80/10/10 at random (needs no files; `data_root` is ignored)."""
    check_fractions(fractions)
    frame = generate_synthetic(
        n_rows=n_rows, seed=seed, seq_len=seq_len, n_users=n_users, n_items=n_items, n_categories=n_categories,
        n_segments=n_segments, depth_mix=depth_mix, strength=strength, first_order=first_order,
    )
    train, valid, test = random_split(frame, tuple(fractions), seed)
    return RawDataset(
        name="synthetic",
        train=train,
        valid=valid,
        test=test,
        schema=synthetic_schema(seq_len),
        description="synthetic CTR data whose samples need 0-3 compositional hops (ground truth in needed_depth)",
        extra_columns=("needed_depth",),
        info={"seed": seed, "n_rows": n_rows},
    )
