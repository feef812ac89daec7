"""Engine == offline trace evaluation of the same controller (probabilities, depths, FLOPs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _engine_helpers import K, ZeroLogitUpfront, encoded, tiny_model, trace_of

from adaptive_loop.cost import CostModel
from adaptive_loop.engine import AdaptiveScorer
from adaptive_loop.engine.reference import fixed_scores, masked_scores
from adaptive_loop.errors import ConfigError
from adaptive_loop.trace_builder import side_features
from controllers.registry import make_controller

TOL = 1e-5


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    model = tiny_model(seed=3)
    valid, test = encoded(1500, seed=1), encoded(700, seed=2)
    return model, valid, test, trace_of(model, valid, "valid"), trace_of(model, test, "test")


def _budget(trace, depth: float) -> float:
    cm = CostModel.from_trace(trace)
    return cm.entry + depth * cm.loop + cm.exit


CONTROLLERS = {
    "fixed": lambda v: make_controller("fixed", depth=2).fit(v),
    "confidence": lambda v: make_controller("confidence").fit(v).calibrate(v, _budget(v, 2.0)),
    "confidence_per_depth": lambda v: make_controller("confidence", criterion="entropy", per_depth=True).fit(v).calibrate(v, _budget(v, 2.5)),
    "stability": lambda v: make_controller("stability", criterion="delta_logit").fit(v).calibrate(v, _budget(v, 2.5)),
    "stability_patience2": lambda v: make_controller("stability", patience=2, criterion="kl").fit(v).calibrate(v, _budget(v, 3.5)),
    "act": lambda v: make_controller("act", epochs=3, hidden=4).fit(v).calibrate(v, _budget(v, 2.5)),
    "upfront_test": lambda v: ZeroLogitUpfront(shift=0.0).fit(v),
    "lgbm_depth": lambda v: make_controller("lgbm_depth", n_estimators=15, num_leaves=7, min_child_samples=20).fit(v).calibrate(v, _budget(v, 2.0)),
}


@pytest.mark.parametrize("name", list(CONTROLLERS))
def test_engine_equals_offline_decision(setup, name: str) -> None:
    model, _, test, valid_trace, test_trace = setup
    controller = CONTROLLERS[name](valid_trace)
    offline = controller.decide(test_trace)
    scored = AdaptiveScorer(model, controller).score_encoded(test)
    if name != "fixed":
        assert len(np.unique(scored.depth)) >= 2, "the test needs a mix of depths to mean anything"
    np.testing.assert_array_equal(scored.depth, offline.depth)
    np.testing.assert_array_equal(scored.exits, offline.exits)
    np.testing.assert_allclose(scored.controller_flops, offline.controller_flops, rtol=TOL)
    np.testing.assert_allclose(scored.flops, offline.cost, rtol=TOL)
    np.testing.assert_allclose(scored.probs, 1 / (1 + np.exp(-offline.logits(test_trace))), atol=TOL)
    np.testing.assert_array_equal(scored.ids, test.ids)


@pytest.mark.parametrize("name", ["confidence", "stability_patience2", "upfront_test"])
def test_masked_reference_takes_the_same_decisions_at_higher_cost(setup, name: str) -> None:
    model, _, test, valid_trace, _ = setup
    controller = CONTROLLERS[name](valid_trace)
    scorer = AdaptiveScorer(model, controller)
    batch = test.to_batch()
    feats = side_features(test, [f.name for f in model.spec.categorical])
    engine, masked = scorer.score_batch(batch, feats), masked_scores(scorer, batch, feats)
    np.testing.assert_array_equal(engine.depth, masked.depth)
    np.testing.assert_allclose(engine.logits, masked.logits, atol=TOL)
    assert masked.flops.mean() > engine.flops.mean()


def test_gather_scatter_keeps_row_order(setup) -> None:
    """Every row's logit is the plain fixed-depth logit of that same row at its own depth."""
    model, _, test, valid_trace, _ = setup
    controller = CONTROLLERS["confidence"](valid_trace)
    scorer = AdaptiveScorer(model, controller)
    batch = test.to_batch()
    scored = scorer.score_batch(batch)
    for d in np.unique(scored.depth):
        rows = scored.depth == d
        np.testing.assert_allclose(scored.logits[rows], fixed_scores(model, batch, int(d))[rows], atol=TOL)
    perm = np.random.default_rng(0).permutation(len(test))
    shuffled = scorer.score_batch(test.subset(perm).to_batch())
    np.testing.assert_array_equal(shuffled.depth, scored.depth[perm])
    np.testing.assert_allclose(shuffled.logits, scored.logits[perm], atol=TOL)


def test_upfront_buckets_keep_row_order(setup) -> None:
    model, _, test, valid_trace, _ = setup
    controller = ZeroLogitUpfront(shift=0.0).fit(valid_trace)
    batch = test.to_batch()
    scored = AdaptiveScorer(model, controller).score_batch(batch)
    assert set(np.unique(scored.depth)) == set(range(K + 1))
    for d in range(K + 1):
        rows = scored.depth == d
        np.testing.assert_allclose(scored.logits[rows], fixed_scores(model, batch, d)[rows], atol=TOL)


def test_scorer_refuses_depths_the_model_cannot_run(setup) -> None:
    _, _, _, valid_trace, _ = setup
    stack = tiny_model(seed=0, name="stackctr", train_loops=2)
    with pytest.raises(ConfigError, match="depths 0..2"):
        AdaptiveScorer(stack, make_controller("fixed", depth=1).fit(valid_trace))


def test_baseline_model_scores_at_depth_zero() -> None:
    model = tiny_model(seed=0, name="deepfm")
    data = encoded(300, seed=5)
    trace = trace_of(model, data, "test", max_depth=0)
    controller = make_controller("confidence", threshold=0.5).fit(trace)
    scored = AdaptiveScorer(model, controller).score_encoded(data)
    assert (scored.depth == 0).all()
    np.testing.assert_allclose(scored.flops, controller.decide(trace).cost, rtol=TOL)
