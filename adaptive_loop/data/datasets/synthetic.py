"""The embedded synthetic CTR dataset: samples that genuinely need different loop depths.

Real CTR data does not tell us which samples are hard, so adaptive-depth controllers cannot be
checked against a ground truth there. Here every sample has a needed depth `d` in 0..3 (kept
per row in the extra column `needed_depth`) and the label depends on information that is
`d + 1` referral links away from the candidate in the user's history.

History (the sequence tokens, `seq_len` events, default 10): the events form referral chains
of 5 events each (an origin and events 1..4 referrals away from it). Every event carries
`hist_node` (its id), `hist_next` (the id of the event it was referred from; an origin refers
to itself), `hist_fb` (1 no click, 2 click) and `hist_items` (an item id, noise). Node ids are
the events' history positions and chains are laid out in random order, so following a link is
an attention lookup (the event whose `hist_node` equals my `hist_next`), never a fixed offset.
Origins carry the true feedback, balanced within a history (half click, half no click, so it
says nothing on its own); every other event relays its origin's feedback flipped with
probability `relay_noise` (one value, or four graded by the relay's distance from its origin:
with rising noise every link followed towards the origin is worth something, so learning to
follow the chain pays step by step), or, with `relay_feedback=False`, logs none (`hist_fb` 3, "not
logged": only origins carry feedback). Noisy relays are what lets training get started: with
relays hidden (or at `relay_noise` 0.5) LoopCTR learnt no lookup at all within thousands of
steps (`benchmarks/results/synthetic_diagnosis.md`). With `mark_origins=True` an origin logs
its feedback with its own codes (`hist_fb` 4 no click, 5 click), so an event can tell an exact
answer from a relay without comparing `hist_node` and `hist_next`. With
`chains_end_at_start=True`, in every chain the events deeper than the start event log no
feedback: nothing can then be read down the start event's chain (a fixed query finds the
start event's children without any lookup, since their `hist_next` is always the latest
event's id, and their relays are noisy copies of the answer), and because every chain is cut
at the same level the history as a whole still says nothing (cutting only the start event's
chain would let the other chain's majority, which relays the opposite origin, answer).

The candidate comes from the latest history event, which sits `d + 1` referrals from its
origin. With `fo = (item_bias + user_bias) / sqrt 2` (first-order effects, N(0, 1)),

    logit = strength * (+1 if the origin's feedback is a click else -1) + first_order * fo,

label ~ Bernoulli(sigmoid(logit)); `true_prob` (an extra column, not a feature) keeps the
probability, so the Bayes AUC is known (about 0.93 with the defaults).

Why depth `d` is needed: LoopCTR's Entry layer lets each history event read one other event
and its Exit lets the candidate read the history once, so at depth 0 the candidate can
reach the latest event and what that event read: information 1 link away. Each Loop step
lets every event read one more event, so following the referrals to an origin `d + 1` links
away takes `d` loop steps (each event repeatedly taking over what its referrer knows, which
an origin, referring to itself, keeps). At depth 0 a `d >= 1` sample only sees noisy relays.
With `entry_hop=False` the candidate's event sits `d` links from its origin instead, for a
model whose Entry does not look events up (LoopCTR with `model.entry_groups: seq_self`, as the
demo runs it): every link is then one loop step, and at depth 0 a row sees its own relay only.
The regime is visible but must be learnt (`slot` takes 8 values, `slot // 2 == d`); `hour`
and `device` are noise. Everything is vectorised numpy: 1M rows take seconds. Split: random
80/10/10, seeded.
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
NOT_LOGGED = 3  # hist_fb of an event whose feedback was not logged (relays with relay_feedback=False)
ORIGIN_CODE_SHIFT = 3  # with mark_origins, an origin logs hist_fb 4 (no click) or 5 (click)


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
    relay_noise: float | Sequence[float] = 0.3,
    relay_feedback: bool = True,
    entry_hop: bool = True,
    mark_origins: bool = False,
    chains_end_at_start: bool = False,
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
    level_noise = relay_noise_by_level(relay_noise)
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
    depth = row_rng.choice(N_DEPTHS, size=n, p=mix / mix.sum())
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
    # half of the origins clicked, so the history as a whole says nothing (with independent
    # origins, "most origins clicked" would answer many rows at depth 0)
    root_fb = np.argsort(row_rng.random((n, n_chains)), axis=1) < n_chains // 2
    flip_probability = np.concatenate([[0.0], level_noise])[level]  # an origin's own feedback is exact
    relayed = np.repeat(root_fb, CHAIN, axis=1) ^ (row_rng.random((n, n_events)) < flip_probability)
    fb = 1 + relayed.astype(np.int64)  # 1 no click, 2 click
    if not relay_feedback:
        fb[:, level != 0] = NOT_LOGGED
    if mark_origins:
        fb[:, level == 0] += ORIGIN_CODE_SHIFT
    if chains_end_at_start:  # in every chain, events deeper than the start event log no feedback
        fb[level[None, :] > (start % CHAIN)[:, None]] = NOT_LOGGED
    hist_fb = np.empty_like(fb)
    np.put_along_axis(hist_fb, place, fb, axis=1)

    target = root_fb[rows, chain].astype(np.float64)

    user = row_rng.integers(0, n_users, n)
    item = row_rng.integers(0, n_items, n)
    fo = (item_bias[item] + user_bias[user]) / np.sqrt(2.0)
    logit = strength * (2.0 * target - 1.0) + first_order * fo
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
            "needed_depth": depth.astype(np.int64),
            "true_prob": prob,
        }
    )


def relay_noise_by_level(relay_noise: float | Sequence[float]) -> np.ndarray:
    """The flip probability of a relay 1, 2, 3 and 4 referrals from its origin.

    One number applies to every relay; a list of four grades them, so that each link nearer
    the origin is worth more (graded relays reward following the chain over averaging relays).
    """
    message = (f"synthetic: relay_noise must be one flip probability in [0, 0.5] or {CHAIN - 1} of them "
               f"(relays 1..{CHAIN - 1} links from their origin), got {relay_noise!r}")
    try:
        values = np.atleast_1d(np.asarray(relay_noise, dtype=np.float64))
    except (TypeError, ValueError):
        raise ConfigError(message) from None
    if values.size == 1:
        values = np.repeat(values, CHAIN - 1)
    if values.shape != (CHAIN - 1,) or not ((values >= 0.0) & (values <= 0.5)).all():
        raise ConfigError(message)
    return values


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
