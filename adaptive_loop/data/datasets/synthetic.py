"""The embedded synthetic CTR dataset: samples that genuinely need different loop depths.

Real CTR data does not tell us which samples are hard, so adaptive-depth controllers cannot be
checked against a ground truth there. Here every sample has a needed depth `d` in 0..3 (kept
per row in the extra column `needed_depth`): its label depends on the endorsements of the
events on its referral path, which a looped attention model sums one link per loop step.

History (the sequence tokens, `seq_len` events, default 10): the events form referral chains
of 5 events each (an origin and events 1..4 referrals away from it). Every event carries
`hist_node` (its id), `hist_next` (the id of the event it was referred from; an origin refers
to itself), `hist_fb` (its endorsement: 1 negative, 2 positive, a fair coin per event) and
`hist_items` (an item id, noise). Node ids are the events' history positions and chains are
laid out in random order, so following a link is an attention lookup (the event whose
`hist_node` equals my `hist_next`), never a fixed offset.

The candidate comes from the latest history event, the *start event*. Its referral path runs
from the start event up to its chain's origin: `d + 1` events (`d + 2` with `entry_hop`). With
s_e = +1 / -1 the endorsements on the path P and `fo = (item_bias + user_bias) / sqrt 2` the
first-order effects (N(0, 1)),

    logit = strength * sum_{e in P} s_e / sqrt(|P|) + first_order * fo,

label ~ Bernoulli(sigmoid(logit)); `true_prob` (an extra column, not a feature) keeps the
probability, so the Bayes AUC is known (about 0.92 with the defaults, 0.96 at the demo's
strength 4).

Why depth `d` is needed: an event reads another through attention, one link per layer. With
`entry_hop=False` (the demo, with an Entry whose sequence tokens attend only themselves,
`model.entry_groups: seq_self`) a row reads at depth 0 the start event's own endorsement, the
first term of its path; each Loop step lets every event add what its referrer has summed so
far, so after `i` steps the start event holds the first `i + 1` terms and a needed-depth-`d`
row is complete after `d` steps. With `entry_hop=True` the Entry can take the first link, and
the path is one event longer. Every term is an independent coin, so each link followed pays
on its own (a partial sum already ranks rows better). The average endorsement of the whole
history holds some of the signal too (the path is 1-5 of its 10 events), which a global token
reads at depth 0 without any lookup: on needed-depth-3 rows without the Entry hop it ranks
about as well as the path's first two terms, against the whole path's far better ranking
(tests/test_data_synthetic.py). That weak signal may also be what lets training start
(attention that is still uniform already pays; not tested separately). An earlier design, in
which the label was the origin's click relayed with noise down the chain and the history as a
whole said nothing, was learnt one link deep and never two
(`benchmarks/results/synthetic_diagnosis.md`).

The regime is visible but must be learnt (`slot` takes 8 values, `slot // 2 == d`); `hour`
and `device` are noise.

Rows that deeper loops hurt (`hidden_stop`, default 0): that share of the rows whose slot shows
a regime d >= 1 counts the start event's own endorsement only (`needed_depth` 0), and nothing in
the row says which. A model can only learn what a link is worth on average in the regime, so
for these rows every loop step adds terms that are noise to their label: their best depth is 0
and deeper loops cost them AUC. The default data have no such rows: there the deepest useful
depth holds every gain. What an oracle over depths finds with hidden stops, and why it is
still less than among noisy copies, is in
benchmarks/results/headroom_decomposition_synthetic_hidden_stop/.

Everything is vectorised numpy: 1M rows take seconds. Split: random 80/10/10, seeded.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from adaptive_loop.data.datasets.base import RawDataset, check_fractions, random_split
from adaptive_loop.data.schema import CategoricalField, DatasetSchema, SequenceField
from adaptive_loop.errors import ConfigError

N_DEPTHS = 4  # needed depths 0..3
CHAIN = N_DEPTHS + 1  # events per referral chain: its origin and events 1..4 referrals away from it
MIN_SEQ_LEN = 2 * CHAIN


def synthetic_schema(seq_len: int) -> DatasetSchema:
    """Schema of the synthetic dataset (label `label`, gAUC group `user`).

    Six categorical fields; the history events (up to `seq_len`) are the sequence tokens,
    each made of `hist_items`, `hist_node` (the event's id), `hist_next` (the id of the event
    it was referred from) and `hist_fb` (its feedback). `hist_node` and `hist_next` share one
    vocabulary, so "the event whose id is my referrer's" is an embedding match.
    """
    return DatasetSchema(
        label="label",
        categorical=(
            CategoricalField("user"),
            CategoricalField("item"),
            CategoricalField("item_cat"),
            CategoricalField("slot"),
            CategoricalField("hour"),
            CategoricalField("device"),
        ),
        sequences=(
            SequenceField("hist_items", max_len=seq_len, vocab_from="item", pooled=False),
            SequenceField("hist_node", max_len=seq_len, vocab="node", pooled=False),
            SequenceField("hist_next", max_len=seq_len, vocab="node", pooled=False),
            SequenceField("hist_fb", max_len=seq_len, pooled=False),
        ),
        group="user",
        token_groups=(("user",), ("item", "item_cat"), ("slot", "hour", "device")),
    )


def generate_synthetic(
    n_rows: int = 200_000,
    seed: int = 0,
    seq_len: int = 10,
    n_users: int = 2_000,
    n_items: int = 1_000,
    n_categories: int = 8,
    depth_mix: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    strength: float = 2.5,
    first_order: float = 0.5,
    entry_hop: bool = True,
    hidden_stop: float = 0.0,
    row_seed: int | None = None,
) -> pd.DataFrame:
    """All rows of the synthetic dataset (unsplit), including `needed_depth` and `true_prob`.

    `row_seed` draws the rows from (seed, row_seed) while the hidden world stays that of
    `seed`: chunks with different row seeds are parts of one dataset, so data larger than
    memory can be generated (and written) chunk by chunk.
    """
    mix = np.asarray(depth_mix, dtype=np.float64)
    if mix.shape != (N_DEPTHS,) or (mix < 0).any() or mix.sum() <= 0:
        raise ConfigError(f"synthetic: depth_mix must be 4 non-negative weights for depths 0..3, got {list(depth_mix)}")
    if n_rows < 1 or seq_len < MIN_SEQ_LEN or n_users < 1 or n_categories < 2:
        raise ConfigError(f"synthetic: need n_rows >= 1, seq_len >= {MIN_SEQ_LEN}, n_users >= 1, n_categories >= 2")
    if n_items < n_categories:
        raise ConfigError(f"synthetic: n_items ({n_items}) must be >= n_categories ({n_categories})")
    if not 0.0 <= hidden_stop <= 1.0:
        raise ConfigError(f"synthetic: hidden_stop must be a share in [0, 1], got {hidden_stop}")
    world_rng, row_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if row_seed is not None:
        row_rng = np.random.default_rng([seed, row_seed])

    # hidden world: first-order effects only
    item_cat = world_rng.permutation(np.arange(n_items) % n_categories)
    item_bias = world_rng.standard_normal(n_items)
    user_bias = world_rng.standard_normal(n_users)

    n = int(n_rows)
    rows = np.arange(n)
    n_chains = seq_len // CHAIN
    n_events = n_chains * CHAIN
    # node m = chain * CHAIN + level (level 0 = root); its parent is m - 1, a root refers to itself
    level = np.arange(n_events) % CHAIN
    parent = np.where(level == 0, np.arange(n_events), np.arange(n_events) - 1)
    depth = row_rng.choice(N_DEPTHS, size=n, p=mix / mix.sum())  # the regime the row shows (slot)
    chain = row_rng.integers(0, n_chains, n)
    # the event the candidate comes from: depth + 1 referrals from its origin (depth without an Entry hop)
    start = chain * CHAIN + depth + int(entry_hop)
    # order[:, t] = the node at history position t: random, except that the start event is the latest one
    order = np.argsort(row_rng.random((n, n_events)), axis=1)
    at = np.argmax(order == start[:, None], axis=1)
    order[rows, at] = order[rows, n_events - 1]
    order[rows, n_events - 1] = start
    place = np.argsort(order, axis=1)  # place[:, m] = history position of node m
    hist_next = np.empty((n, n_events), dtype=np.int64)
    np.put_along_axis(hist_next, place, place[:, parent], axis=1)
    # every event's endorsement is a fair coin, independent of every other
    endorsement = row_rng.random((n, n_events)) < 0.5
    fb = 1 + endorsement.astype(np.int64)  # 1 negative, 2 positive
    hist_fb = np.empty_like(fb)
    np.put_along_axis(hist_fb, place, fb, axis=1)
    # the start event's referral path: levels 0 .. its own level of its chain; a hidden stop
    # keeps only the start event itself (drawn only when asked for, so the default rows stay put)
    stopped = np.zeros(n, dtype=bool)
    if hidden_stop > 0:
        stopped = (depth > 0) & (row_rng.random(n) < hidden_stop)
    first_level = np.where(stopped, start % CHAIN, 0)
    in_chain = np.arange(n_events) // CHAIN == chain[:, None]
    on_path = in_chain & (level >= first_level[:, None]) & (level <= (start % CHAIN)[:, None])
    path_sum = np.where(on_path, 2.0 * endorsement - 1.0, 0.0).sum(axis=1) / np.sqrt(on_path.sum(axis=1))

    user = row_rng.integers(0, n_users, n)
    item = row_rng.integers(0, n_items, n)
    fo = (item_bias[item] + user_bias[user]) / np.sqrt(2.0)
    logit = strength * path_sum + first_order * fo
    prob = 1.0 / (1.0 + np.exp(-logit))
    label = (row_rng.random(n) < prob).astype(np.int64)

    def as_list(matrix: np.ndarray) -> pd.arrays.ArrowExtensionArray:
        offsets = pa.array(np.arange(0, n * n_events + 1, n_events, dtype=np.int32))
        return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix).reshape(-1))))

    return pd.DataFrame(
        {
            "label": label,
            "user": user,
            "item": item,
            "item_cat": item_cat[item],
            "slot": 2 * depth + row_rng.integers(0, 2, n),
            "hour": row_rng.integers(0, 24, n),
            "device": row_rng.integers(0, 4, n),
            "hist_items": as_list(row_rng.integers(0, n_items, (n, n_events))),
            "hist_node": as_list(np.broadcast_to(np.arange(n_events), (n, n_events))),
            "hist_next": as_list(hist_next),
            "hist_fb": as_list(hist_fb),
            "needed_depth": np.where(stopped, 0, depth).astype(np.int64),
            "true_prob": prob,
        }
    )


def load_synthetic(
    data_root: object = None, fractions: Sequence[float] = (0.8, 0.1, 0.1), **generator_options: Any
) -> RawDataset:
    """The synthetic dataset split 80/10/10 at random (needs no files; `data_root` is ignored).

    Every option of `generate_synthetic` (except `row_seed`) is a dataset option; the
    signature below lists them, so unknown options are caught by name and a new generator
    option needs no second list here.
    """
    check_fractions(fractions)
    options = inspect.signature(generate_synthetic).bind(**generator_options)
    options.apply_defaults()
    seed, n_rows, seq_len = (options.arguments[k] for k in ("seed", "n_rows", "seq_len"))
    frame = generate_synthetic(**options.arguments)
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


def _load_synthetic_signature() -> inspect.Signature:
    """`load_synthetic`'s options as a user sees them: data_root, the generator's options, fractions."""
    own = inspect.signature(load_synthetic).parameters
    generator = [p for name, p in inspect.signature(generate_synthetic).parameters.items() if name != "row_seed"]
    return inspect.Signature([own["data_root"], *generator, own["fractions"]], return_annotation="RawDataset")


load_synthetic.__signature__ = _load_synthetic_signature()  # type: ignore[attr-defined]
