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

N_TAG_BITS = 4
N_LAYERS = 4
MIN_SEQ_LEN = 2 * N_LAYERS


def synthetic_schema(seq_len: int) -> DatasetSchema:
    """Schema of the synthetic dataset (label `label`, gAUC group `user`)."""
    return DatasetSchema(
        label="label",
        categorical=(
            CategoricalField("user"),
            CategoricalField("item"),
            CategoricalField("item_cat", vocab="category"),
            CategoricalField("pointer", vocab="session"),
            CategoricalField("slot"),
            CategoricalField("hour"),
            CategoricalField("device"),
        ),
        sequences=(
            SequenceField("tags", max_len=N_TAG_BITS, vocab="tags", pooled=True),
            SequenceField("hist_items", max_len=seq_len, vocab_from="item", pooled=False),
            SequenceField("hist_tags", max_len=seq_len, vocab="tags", pooled=False),
            SequenceField("hist_sess", max_len=seq_len, vocab="session", pooled=False),
            SequenceField("hist_link", max_len=seq_len, vocab="session", pooled=False),
            SequenceField("hist_fb", max_len=seq_len, pooled=False),
        ),
        group="user",
        token_groups=(("user",), ("item", "item_cat"), ("pointer", "tags"), ("slot", "hour", "device")),
    )


def layer_sizes(n_sessions: int) -> list[int]:
    rest = n_sessions - 1
    base, extra = divmod(rest, N_LAYERS - 1)
    sizes = [1] + [base] * (N_LAYERS - 1)
    for j in range(extra):
        sizes[N_LAYERS - 1 - j] += 1
    return sizes


def generate_synthetic(
    n_rows: int = 200_000,
    seed: int = 0,
    seq_len: int = 16,
    n_users: int = 2_000,
    n_items: int = 1_000,
    n_categories: int = 8,
    depth_mix: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    strength: float = 2.5,
    first_order: float = 0.3,
    hop_weight: float = 0.0,
    random_facets: bool = False,
    row_seed: int | None = None,
) -> pd.DataFrame:
    mix = np.asarray(depth_mix, dtype=np.float64)
    if mix.shape != (4,) or (mix < 0).any() or mix.sum() <= 0:
        raise ConfigError(f"synthetic: depth_mix must be 4 non-negative weights for depths 0..3, got {list(depth_mix)}")
    if n_rows < 1 or seq_len < MIN_SEQ_LEN or n_users < 1 or n_categories < 2:
        raise ConfigError(f"synthetic: need n_rows >= 1, seq_len >= {MIN_SEQ_LEN}, n_users >= 1, n_categories >= 2")
    if n_items < n_categories:
        raise ConfigError(f"synthetic: n_items ({n_items}) must be >= n_categories ({n_categories})")
    world_rng, row_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if row_seed is not None:
        row_rng = np.random.default_rng([seed, row_seed])

    item_cat = world_rng.permutation(np.arange(n_items) % n_categories)
    item_bias = world_rng.standard_normal(n_items)
    user_bias = world_rng.standard_normal(n_users)
    half = np.r_[np.ones(n_categories // 2), -np.ones(n_categories - n_categories // 2)]
    aff = np.stack([world_rng.permutation(half) for _ in range(n_categories)])
    by_cat = np.argsort(item_cat, kind="stable")
    cat_start = np.searchsorted(item_cat[by_cat], np.arange(n_categories))
    cat_count = np.bincount(item_cat, minlength=n_categories)

    n = int(n_rows)
    w = seq_len // (2 * N_LAYERS)
    n_sess = N_LAYERS * w
    n_ev = 2 * n_sess
    layer_of = np.arange(n_sess) // w
    r = np.arange(n)

    depth = row_rng.choice(4, size=n, p=mix / mix.sum())
    user = row_rng.integers(0, n_users, n)
    item = row_rng.integers(0, n_items, n)
    cat = item_cat[item]
    tags = row_rng.integers(0, 2, (n, N_TAG_BITS))
    if random_facets:
        layer_bit = np.argsort(row_rng.random((n, N_TAG_BITS)), axis=1)[:, :N_LAYERS]
    else:
        layer_bit = np.broadcast_to(np.arange(N_LAYERS), (n, N_LAYERS))
    sess_bit = layer_bit[:, layer_of]
    low = row_rng.integers(0, 2, (n, n_sess))
    ev_bitval = np.stack([low, 1 - low], axis=2).reshape(n, n_ev)
    ev_tag = 2 * np.repeat(sess_bit, 2, axis=1) + ev_bitval
    link = np.repeat(np.arange(n_sess)[None, :], n, axis=0).repeat(2, axis=1)
    for lay in range(N_LAYERS - 1):
        sigma = np.argsort(row_rng.random((n, w)), axis=1)
        shift = 1 + row_rng.integers(0, max(w - 1, 1), (n, 1)) if w > 1 else np.zeros((n, 1), dtype=np.int64)
        i = np.arange(w)[None, :]
        sess = lay * w + np.arange(w)
        link[:, 2 * sess] = (lay + 1) * w + sigma
        link[:, 2 * sess + 1] = (lay + 1) * w + np.take_along_axis(sigma, (i + shift) % w, axis=1)
    ev_cat = row_rng.integers(0, n_categories, (n, n_ev))
    ev_fb = row_rng.integers(0, 2, (n, n_ev))
    # payloads balanced over the sessions of each layer for each tag value
    for term in (lay * w + np.arange(w) for lay in range(N_LAYERS)):
      for v in (0, 1):
        ones = np.arange(w)[None, :] < (w // 2 + (row_rng.random((n, 1)) < 0.5) * (w % 2))
        bal = np.take_along_axis(ones, np.argsort(row_rng.random((n, w)), axis=1), axis=1).astype(np.int64)
        ev_index = 2 * term[None, :] + np.where(low[:, term] == v, 0, 1)
        np.put_along_axis(ev_fb, ev_index, bal, axis=1)
    ev_item = by_cat[cat_start[ev_cat] + (row_rng.random((n, n_ev)) * cat_count[ev_cat]).astype(np.int64)]
    sizes = np.full(N_LAYERS, w)
    first = np.arange(N_LAYERS) * w
    start_layer = N_LAYERS - 1 - depth
    pointer = first[start_layer] + (row_rng.random(n) * sizes[start_layer]).astype(np.int64)

    def chosen(session: np.ndarray) -> np.ndarray:
        want = tags[r, sess_bit[r, session]]
        e0 = 2 * session
        return np.where(ev_bitval[r, e0] == want, e0, e0 + 1)

    current = pointer
    partial = np.zeros(n)
    for step in range(N_LAYERS - 1):
        event = chosen(current)
        partial += np.where(step < depth, 2.0 * ev_fb[r, event] - 1.0, 0.0)
        current = link[r, event]
    final_fb = ev_fb[r, chosen(current)]
    fo = (item_bias[item] + user_bias[user]) / np.sqrt(2.0)
    logit = strength * (2.0 * final_fb - 1.0 + hop_weight * partial) + first_order * fo
    prob = 1.0 / (1.0 + np.exp(-logit))
    label = (row_rng.random(n) < prob).astype(np.int64)
    slot = 2 * depth + row_rng.integers(0, 2, n)
    hour = row_rng.integers(0, 24, n)
    device = row_rng.integers(0, 4, n)
    offsets = pa.array(np.arange(0, n * n_ev + 1, n_ev, dtype=np.int32))

    def as_list(matrix: np.ndarray) -> pd.arrays.ArrowExtensionArray:
        return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix).reshape(-1))))

    return pd.DataFrame(
        {
            "label": label,
            "user": user,
            "item": item,
            "item_cat": cat,
            "tags": pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(
                pa.array(np.arange(0, N_TAG_BITS * n + 1, N_TAG_BITS, dtype=np.int32)),
                pa.array((2 * np.arange(N_TAG_BITS) + tags).reshape(-1)))),
            "pointer": pointer,
            "slot": slot,
            "hour": hour,
            "device": device,
            "hist_items": as_list(ev_item),
            "hist_tags": as_list(ev_tag),
            "hist_sess": as_list(np.broadcast_to(np.arange(n_ev) // 2, (n, n_ev))),
            "hist_link": as_list(link),
            "hist_fb": as_list(ev_fb),
            "needed_depth": depth.astype(np.int64),
            "true_prob": prob,
        }
    )


def load_synthetic(
    data_root: object = None,
    n_rows: int = 200_000,
    seed: int = 0,
    seq_len: int = 16,
    n_users: int = 2_000,
    n_items: int = 1_000,
    n_categories: int = 8,
    depth_mix: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    strength: float = 2.5,
    first_order: float = 0.3,
    hop_weight: float = 0.0,
    random_facets: bool = False,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> RawDataset:
    """The synthetic dataset split 80/10/10 at random (needs no files; `data_root` is ignored)."""
    check_fractions(fractions)
    frame = generate_synthetic(
        n_rows=n_rows, seed=seed, seq_len=seq_len, n_users=n_users, n_items=n_items, n_categories=n_categories,
        depth_mix=depth_mix, strength=strength, first_order=first_order, hop_weight=hop_weight, random_facets=random_facets,
    )
    train, valid, test = random_split(frame, tuple(fractions), seed)
    return RawDataset(
        name="synthetic",
        train=train,
        valid=valid,
        test=test,
        schema=synthetic_schema(seq_len),
        description="synthetic CTR data whose samples need 0-3 compositional hops (ground truth in needed_depth)",
        extra_columns=("needed_depth", "true_prob"),
        info={"seed": seed, "n_rows": n_rows},
    )
