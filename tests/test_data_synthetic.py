"""The synthetic dataset: deterministic, its referral-chain invariants, no label leak, a high Bayes AUC."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from adaptive_loop.data.datasets import generate_synthetic, load_raw_dataset
from adaptive_loop.data.datasets.synthetic import synthetic_schema
from adaptive_loop.errors import ConfigError


def _lists(frame: pd.DataFrame, column: str) -> np.ndarray:
    return np.stack(frame[column].to_numpy())


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = generate_synthetic(n_rows=5_000, seed=3)
    b = generate_synthetic(n_rows=5_000, seed=3)
    c = generate_synthetic(n_rows=5_000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a["label"].equals(c["label"])


def test_needed_depth_and_sizes() -> None:
    raw = load_raw_dataset("synthetic", n_rows=20_000, seed=1, seq_len=12)
    assert (len(raw.train), len(raw.valid), len(raw.test)) == (16_000, 2_000, 2_000)
    assert raw.extra_columns == ("needed_depth", "true_prob")
    depth = raw.train["needed_depth"].to_numpy()
    assert set(np.unique(depth)) == {0, 1, 2, 3}
    assert (raw.train["hist_items"].list.len().to_numpy() == 10).all()  # two whole chains fit in 12
    assert (raw.train["slot"].to_numpy() // 2 == depth).all()  # the regime is visible in the features
    assert 0.4 < raw.train["label"].mean() < 0.6


def test_the_label_sits_needed_depth_plus_one_links_from_the_latest_event() -> None:
    frame = generate_synthetic(n_rows=3_000, seed=2, strength=2.5, first_order=0.5)
    node, nxt, fb = (_lists(frame, c) for c in ("hist_node", "hist_next", "hist_fb"))
    rows = np.arange(len(frame))
    assert (node == np.arange(node.shape[1])).all()  # ids are history positions
    origin = nxt == node
    assert (origin.sum(axis=1) == 2).all() and ((fb * origin).sum(axis=1) == 3).all()  # one click, one no-click origin
    current = np.full(len(frame), node.shape[1] - 1)  # the latest event
    for step in range(4):
        arrived = origin[rows, current]
        assert (arrived == (frame["needed_depth"].to_numpy() < step)).all()
        current = nxt[rows, current]
    reached = origin[rows, current]
    assert reached.all()
    # follow exactly needed_depth + 1 links: the origin's feedback sets the sign of the logit
    current = np.full(len(frame), node.shape[1] - 1)
    for step in range(4):
        move = frame["needed_depth"].to_numpy() >= step
        current = np.where(move, nxt[rows, current], current)
    sign = 2.0 * (fb[rows, current] == 2) - 1.0
    logit = np.log(frame["true_prob"] / (1 - frame["true_prob"])).to_numpy()
    rest = logit - 2.5 * sign  # first-order effects only: N(0, 0.5^2)
    assert abs(rest.mean()) < 0.1 and 0.4 < rest.std() < 0.6


def test_no_feature_leaks_the_label_or_the_truth() -> None:
    schema = synthetic_schema(10)
    features = {f.name for f in schema.categorical} | {s.name for s in schema.sequences}
    assert not features & {"label", "true_prob", "needed_depth"}
    frame = generate_synthetic(n_rows=20_000, seed=0)
    y = frame["label"].to_numpy()
    for name in sorted({f.name for f in schema.categorical} - {"user", "item", "item_cat"}):
        assert roc_auc_score(y, frame[name]) == pytest.approx(0.5, abs=0.03), name
    # the latest event's relayed feedback is informative but far from the truth for deep rows
    latest = _lists(frame, "hist_fb")[:, -1]
    deep = frame["needed_depth"].to_numpy() == 3
    assert roc_auc_score(y[deep], latest[deep]) < 0.7 < roc_auc_score(y[deep], frame["true_prob"][deep])


def test_bayes_auc_is_high_in_every_regime() -> None:
    frame = generate_synthetic(n_rows=40_000, seed=0)
    assert 0.88 < roc_auc_score(frame["label"], frame["true_prob"]) < 0.97
    for d in range(4):
        part = frame[frame["needed_depth"] == d]
        assert roc_auc_score(part["label"], part["true_prob"]) > 0.88


def test_hidden_relays_leave_feedback_at_the_origins_only() -> None:
    noisy = generate_synthetic(n_rows=2_000, seed=5)
    hidden = generate_synthetic(n_rows=2_000, seed=5, relay_feedback=False)
    origin = _lists(hidden, "hist_next") == _lists(hidden, "hist_node")
    fb_noisy, fb_hidden = _lists(noisy, "hist_fb"), _lists(hidden, "hist_fb")
    assert (fb_hidden[~origin] == 3).all() and (fb_hidden[origin] == fb_noisy[origin]).all()
    pd.testing.assert_series_equal(noisy["true_prob"], hidden["true_prob"])  # same rows, same truth


def test_without_entry_hop_the_origin_sits_needed_depth_links_away() -> None:
    frame = generate_synthetic(n_rows=2_000, seed=6, entry_hop=False)
    node, nxt = _lists(frame, "hist_node"), _lists(frame, "hist_next")
    rows = np.arange(len(frame))
    current = np.full(len(frame), node.shape[1] - 1)
    for step in range(3):  # follow needed_depth links from the latest event
        current = np.where(frame["needed_depth"].to_numpy() > step, nxt[rows, current], current)
    assert (nxt[rows, current] == node[rows, current]).all()  # an origin
    latest_is_origin = nxt[:, -1] == node[:, -1]
    assert (latest_is_origin == (frame["needed_depth"].to_numpy() == 0)).all()


def _link_distance_to_origin(frame: pd.DataFrame) -> np.ndarray:
    """Links from every history event to its chain's origin (0 for an origin), by following hist_next."""
    node, nxt = _lists(frame, "hist_node"), _lists(frame, "hist_next")
    rows = np.arange(len(frame))[:, None]
    current, distance = node.copy(), np.zeros_like(node)
    for _ in range(node.shape[1]):
        step = nxt[rows, current] != current
        distance += step
        current = np.where(step, nxt[rows, current], current)
    return distance


def test_graded_relays_flip_more_the_farther_they_sit_from_their_origin() -> None:
    grades = [0.05, 0.15, 0.3, 0.45]
    frame = generate_synthetic(n_rows=20_000, seed=7, relay_noise=grades)
    fb, nxt, node = _lists(frame, "hist_fb"), _lists(frame, "hist_next"), _lists(frame, "hist_node")
    distance = _link_distance_to_origin(frame)
    # each event's origin: follow hist_next until it refers to itself
    rows = np.arange(len(frame))[:, None]
    origin = node.copy()
    for _ in range(node.shape[1]):
        origin = nxt[rows, origin]
    flipped = fb != fb[rows, origin]
    assert not flipped[distance == 0].any()  # origins are exact
    for level, rate in enumerate(grades, start=1):
        assert flipped[distance == level].mean() == pytest.approx(rate, abs=0.01), level
    # one value for every level is the same data as the scalar
    pd.testing.assert_frame_equal(generate_synthetic(n_rows=500, seed=7, relay_noise=[0.3] * 4),
                                  generate_synthetic(n_rows=500, seed=7, relay_noise=0.3))


def test_marked_origins_log_their_own_feedback_codes() -> None:
    plain = generate_synthetic(n_rows=2_000, seed=8)
    marked = generate_synthetic(n_rows=2_000, seed=8, mark_origins=True)
    origin = _lists(plain, "hist_next") == _lists(plain, "hist_node")
    fb_plain, fb_marked = _lists(plain, "hist_fb"), _lists(marked, "hist_fb")
    assert (fb_marked[origin] == fb_plain[origin] + 3).all() and set(np.unique(fb_marked[origin])) == {4, 5}
    assert (fb_marked[~origin] == fb_plain[~origin]).all()
    pd.testing.assert_series_equal(plain["label"], marked["label"])


def test_chains_end_at_start_leaves_only_the_way_up_the_chain() -> None:
    plain = generate_synthetic(n_rows=3_000, seed=9, entry_hop=False)
    cut = generate_synthetic(n_rows=3_000, seed=9, entry_hop=False, chains_end_at_start=True)
    depth = plain["needed_depth"].to_numpy()
    distance = _link_distance_to_origin(plain)
    deeper = distance > depth[:, None]  # in every chain, the events deeper than the start event
    fb_plain, fb_cut = _lists(plain, "hist_fb"), _lists(cut, "hist_fb")
    assert (fb_cut[deeper] == 3).all() and (fb_cut[~deeper] == fb_plain[~deeper]).all()
    assert (deeper.sum(axis=1) == 2 * (4 - depth)).all()  # both chains cut alike
    # the start event (the latest) has no logged descendant: its children are all cut
    children = _lists(plain, "hist_next") == plain["hist_node"].map(len).to_numpy()[:, None] - 1
    children[:, -1] = False
    assert (fb_cut[children] == 3).all()
    pd.testing.assert_series_equal(plain["true_prob"], cut["true_prob"])


def test_depth_mix_and_bad_options() -> None:
    frame = generate_synthetic(n_rows=2_000, seed=0, depth_mix=(1, 0, 0, 1))
    assert set(frame["needed_depth"].unique()) == {0, 3}
    with pytest.raises(ConfigError, match="depth_mix"):
        generate_synthetic(n_rows=10, depth_mix=(1, 1))
    with pytest.raises(ConfigError, match="seq_len"):
        generate_synthetic(n_rows=10, seq_len=8)
    with pytest.raises(ConfigError, match="relay_noise"):
        generate_synthetic(n_rows=10, relay_noise=0.7)
    with pytest.raises(ConfigError, match="relay_noise"):
        generate_synthetic(n_rows=10, relay_noise=[0.1, 0.2])
    with pytest.raises(ConfigError, match="relay_noise"):
        generate_synthetic(n_rows=10, relay_noise="high")
    with pytest.raises(ConfigError, match="did you mean 'n_rows'"):
        load_raw_dataset("synthetic", nrows=10)
