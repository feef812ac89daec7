"""Up-front learned controllers (LightGBM depth predictor, budgeted allocator): allocation rule,
calibration, streaming budget, offline == online, honest cost, ground truth excluded,
LightGBM text files and their corruption."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from _trace_factory import make_trace
from sklearn.base import clone

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import BudgetError, CheckpointError, ConfigError, NotFittedError
from adaptive_loop.harness.online import simulate_online
from controllers import make_controller
from controllers.learned.features import GROUND_TRUTH_FEATURES, UpfrontFeatures, side_feature_names
from controllers.learned.streaming_budget import stream_trace
from controllers.learned.utility import allocate, hull_slopes, price_candidates
from controllers.persistence import load_controller, save_controller

CASES = [
    ("lgbm_depth", {"n_estimators": 30, "num_leaves": 7}),
    ("lgbm_depth", {"target": "gain", "n_estimators": 20, "num_leaves": 7, "use_hidden": False}),
    ("lgbm_depth", {"n_estimators": 20, "oracle_cost_lambda": 0.01, "use_logit": False}),
    ("allocator", {"epochs": 4, "hidden": 8}),
    ("allocator", {"gain_model": "lgbm", "n_estimators": 20, "num_leaves": 7}),
    ("allocator", {"epochs": 3, "hidden": 8, "gain_target": "rank"}),
    ("lgbm_depth", {"target": "gain", "gain_target": "rank", "n_estimators": 20, "num_leaves": 7}),
]


@pytest.fixture(scope="module")
def traces():
    return (make_trace(2000, max_depth=4, seed=11, flops_summary=30.0, split="valid"),
            make_trace(1500, max_depth=4, seed=12, flops_summary=30.0))


@pytest.fixture(scope="module")
def fitted(traces):
    valid, _ = traces
    return {i: make_controller(name, **params).fit(valid) for i, (name, params) in enumerate(CASES)}


# ----------------------------------------------------------------------------- the rule
def test_allocate_and_hull_breakpoints_match_brute_force():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(40, 5))
    units = np.array([0.0, 1.3, 2.3, 3.3, 4.3])
    slopes = np.sort(hull_slopes(u, units))
    grid = np.linspace(-5, 5, 4001)
    changes = []
    prev = allocate(u, units, grid[0])
    for lam in grid[1:]:
        cur = allocate(u, units, lam)
        if np.any(cur != prev):
            changes.append(lam)
        prev = cur
    # every change of the allocation on the grid happens next to a hull slope
    for lam in changes:
        assert np.min(np.abs(slopes - lam)) < 2 * (grid[1] - grid[0])
    # allocations are monotone in the price, and candidates span all of them
    costs = [units[allocate(u, units, lam)].mean() for lam in price_candidates(u, units)]
    assert np.all(np.diff(costs) >= -1e-12)
    assert costs[0] == 0.0 and costs[-1] == units[-1]
    np.testing.assert_array_equal(allocate(np.array([[0.0, 1.0, 1.0]]), units[:3], 0.0), [1])  # ties to the shallowest


def test_rank_gains_measure_auc_contribution():
    from _trace_factory import tiny_trace

    from adaptive_loop.depth_targets import rank_gains

    trace = tiny_trace([[0.0, 1.0], [0.0, -1.0], [0.0, -1.0], [0.0, 1.0]], [1, 1, 0, 0])
    np.testing.assert_allclose(rank_gains(trace), [[0, 0.5], [0, -0.5], [0, 0.5], [0, -0.5]])
    imbalanced = tiny_trace([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], [1, 0, 0, 0])
    np.testing.assert_allclose(rank_gains(imbalanced)[0, 1], 0.5 * 0.5 / 0.25)  # positives weigh 1 / (2 pi)


def test_depth_units_charge_the_extra_exit():
    meta = make_trace(10, max_depth=3, seed=0).meta  # entry 1000, loop 200, exit 50
    exits, units = CostModel.from_meta(meta).depth_units(meta.max_depth, uses_first_step=True)
    np.testing.assert_array_equal(exits, [1, 2, 2, 2])
    np.testing.assert_allclose(units, [0.0, 1.25, 2.25, 3.25])
    exits, units = CostModel.from_meta(meta).depth_units(meta.max_depth, uses_first_step=False)
    np.testing.assert_allclose(units, [0.0, 1.0, 2.0, 3.0])


# ----------------------------------------------------------------------------- protocol
@pytest.mark.parametrize("case", range(len(CASES)))
def test_offline_equals_online_and_calibration(traces, fitted, case):
    valid, test = traces
    c = fitted[case]
    for budget in np.linspace(*c.cost_range(valid), 4)[1:-1]:
        c.calibrate(valid, float(budget))
        assert c.calibration_.mean_cost <= budget + 1e-6
        # rows with identical utilities move together, so the budget is met up to one tie group
        assert c.calibration_.mean_cost >= budget - 0.1 * (c.cost_range(valid)[1] - c.cost_range(valid)[0])
        offline = c.decide(test).depth
        np.testing.assert_array_equal(simulate_online(c, test), offline)
        np.testing.assert_array_equal(simulate_online(c, test, upfront=False), offline)


@pytest.mark.parametrize("case", [0, 3])
def test_sklearn_conventions(traces, fitted, case):
    _, test = traces
    name, params = CASES[case]
    with pytest.raises(NotFittedError):
        make_controller(name, **params).decide(test)
    c = fitted[case]
    assert clone(c).get_params() == c.get_params()
    assert all(k.endswith("_") for k in vars(c) if not k.startswith("_") and k not in c.get_params())
    restored = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(restored.decide(test).depth, c.decide(test).depth)


def test_cost_is_features_trees_and_allocation(traces, fitted):
    _, test = traces
    c = fitted[0]  # multiclass, with summary and logit
    u, flops = c.utilities(test)
    k1 = test.n_depths
    trees = flops - 30.0 - 1.0 - 3.0 * k1 - 10.0 * k1
    assert np.all(trees >= c.predictor_.booster.num_trees())  # at least one add per tree
    assert np.unique(trees).size > 1  # the path length differs by row: counted per row
    d = c.decide(test)
    np.testing.assert_array_equal(d.exits, np.where(d.depth > 0, 2, 1))
    cm = CostModel.from_trace(test)
    np.testing.assert_allclose(d.cost, cm.cost(d.depth, d.exits, flops))
    no_logit = fitted[2]
    assert not no_logit.uses_first_step
    np.testing.assert_array_equal(no_logit.decide(test).exits, 1)


def test_streaming_budget_meets_the_running_mean(traces, fitted):
    _, test = traces
    c = fitted[3]
    lo, hi = c.cost_range(test)
    budget = lo + 0.4 * (hi - lo)
    result = stream_trace(c, test, budget, batch_size=200)
    assert result.mean_cost <= budget * (1 + 1e-9)
    assert result.mean_cost >= budget - 0.05 * (hi - lo)
    assert len(result.lams) == int(np.ceil(test.n_samples / 200))
    with pytest.raises(BudgetError):
        stream_trace(c, test, lo * 0.5, batch_size=200)


# ----------------------------------------------------------------------------- inputs
def test_ground_truth_is_excluded_and_cannot_be_requested(traces, fitted):
    valid, test = traces
    assert "needed_depth" in valid.features
    for c in fitted.values():
        assert not set(c.features_.names) & GROUND_TRUTH_FEATURES
    assert side_feature_names(["needed_depth", "seq_len", "true_prob"]) == ["seq_len"]
    assert side_feature_names(["seq_len", "id_user"], include="id_user, seq_len") == ["id_user", "seq_len"]
    with pytest.raises(ConfigError, match="ground truth"):
        side_feature_names(["needed_depth", "seq_len"], include="seq_len,needed_depth")
    with pytest.raises(ConfigError, match="ground truth"):
        make_controller("lgbm_depth", features=("needed_depth", "seq_len")).fit(valid)
    with pytest.raises(ConfigError, match="ground truth"):
        UpfrontFeatures.for_trace(valid, True, False, include=["needed_depth"])
    scrambled = test.subset(np.arange(test.n_samples))
    scrambled.features["needed_depth"] = np.random.default_rng(1).permutation(scrambled.features["needed_depth"])
    for c in fitted.values():
        np.testing.assert_array_equal(c.decide(scrambled).depth, c.decide(test).depth)


def test_invalid_params(traces):
    valid, _ = traces
    with pytest.raises(ConfigError, match="target"):
        make_controller("lgbm_depth", target="depth").fit(valid)
    with pytest.raises(ConfigError, match="gain_model"):
        make_controller("allocator", gain_model="svm").fit(valid)


# ----------------------------------------------------------------------------- files
def test_save_load_lightgbm_text_and_corruption(traces, fitted, tmp_path):
    valid, test = traces
    for i in (0, 1, 3, 4):
        c = fitted[i]
        c.calibrate(valid, 0.5 * sum(c.cost_range(valid)))
        save_controller(c, tmp_path / f"c{i}")
        back = load_controller(tmp_path / f"c{i}")
        np.testing.assert_array_equal(back.decide(test).depth, c.decide(test).depth)
        np.testing.assert_allclose(back.decide(test).cost, c.decide(test).cost)
    text = (tmp_path / "c0" / "depth_classes.txt").read_text()
    assert text.startswith("tree")  # LightGBM's own text format, not a pickle
    assert sorted(p.name for p in (tmp_path / "c1").glob("gain_depth*.txt")) == [f"gain_depth{t}.txt" for t in range(1, 5)]
    (tmp_path / "c0" / "depth_classes.txt").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_controller(tmp_path / "c0")
    (tmp_path / "c1" / "gain_depth2.txt").unlink()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_controller(tmp_path / "c1")


def test_unreadable_lightgbm_file_without_checksum(tmp_path):
    from controllers.learned.lgbm_models import load_booster

    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a model\n")
    with pytest.raises(CheckpointError, match="not a readable LightGBM"):
        load_booster(bad, sha256=None)


def test_predictors_learn_something(traces):
    """On the factory trace the depth-0 summary carries the needed depth's progress signal:
    the oracle-depth classifier must beat the class prior on held-out rows."""
    valid, test = traces
    c = make_controller("lgbm_depth", n_estimators=40, num_leaves=7).fit(valid)
    from adaptive_loop.depth_targets import oracle_depths

    u, _ = c.utilities(test)
    truth = oracle_depths(test)
    nll = -np.mean(np.log(np.clip(u[np.arange(test.n_samples), truth], 1e-12, 1)))
    prior = np.bincount(oracle_depths(valid), minlength=test.n_depths) / valid.n_samples
    nll_prior = -np.mean(np.log(np.clip(prior[truth], 1e-12, 1)))
    assert nll < nll_prior
    assert list(itertools.islice(c.features_.names, 0, 1)) == ["seq_len"]
