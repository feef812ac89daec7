"""Step-wise API == all-depths forward, row subsetting, StackCTR's depth limit."""

from __future__ import annotations

import pytest
import torch

from adaptive_loop.errors import ConfigError
from adaptive_loop.model import LoopState, build_model, tiny_config
from adaptive_loop.model.testing import random_batch, toy_spec

TOL = dict(rtol=1e-5, atol=1e-5)


def _model(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(tiny_config(**overrides), toy_spec()).eval()


@pytest.mark.parametrize(
    "overrides",
    [{}, {"moe": False, "moe_attention": False, "hyper_connections": False}, {"seq_compress_queries": 2, "summary": "mean_all"}],
)
def test_stepwise_equals_all_depths(overrides: dict) -> None:
    model = _model(**overrides)
    batch = random_batch(toy_spec(), 32)
    with torch.no_grad():
        out = model(batch, depth=5, return_hidden=True)
        state = model.enter(batch)
        assert isinstance(state, LoopState) and len(state) == 32
        for depth in range(6):
            assert state.depth == depth
            torch.testing.assert_close(model.exit(state), out.logits[:, depth], **TOL)
            torch.testing.assert_close(model.summarize(state), out.hidden[:, depth], **TOL)
            state = model.loop_step(state)


def test_subset_rows_and_continue_only_some() -> None:
    model = _model()
    batch = random_batch(toy_spec(), 40)
    with torch.no_grad():
        out = model(batch, depth=4)
        state = model.loop_step(model.enter(batch))
        rows = torch.tensor([3, 0, 39, 12, 21])
        sub = state.subset(rows)
        keep = torch.zeros(40, dtype=torch.bool)
        keep[::3] = True
        masked = state.subset(keep)
        for depth in range(2, 5):
            sub, masked = model.loop_step(sub), model.loop_step(masked)
            torch.testing.assert_close(model.exit(sub), out.logits[rows, depth], **TOL)
            torch.testing.assert_close(model.exit(masked), out.logits[keep, depth], **TOL)
        sub2 = sub.subset(torch.tensor([1, 4]))  # subsetting twice
        torch.testing.assert_close(model.exit(sub2), out.logits[rows[[1, 4]], 4], **TOL)


def test_training_mode_without_dropout_matches_stepwise() -> None:
    model = _model().train()
    batch = random_batch(toy_spec(), 16)
    out = model(batch, depth=2)
    state = model.enter(batch)
    torch.testing.assert_close(model.exit(model.loop_step(model.loop_step(state))), out.logits[:, 2], **TOL)


def test_stackctr_stepwise_and_depth_limit() -> None:
    model = _model(name="stackctr", train_loops=2)
    batch = random_batch(toy_spec(), 16)
    out = model(batch)
    assert out.logits.shape == (16, 3)
    state = model.enter(batch)
    for depth in range(3):
        torch.testing.assert_close(model.exit(state), out.logits[:, depth], **TOL)
        if depth < 2:
            state = model.loop_step(state)
    with pytest.raises(ConfigError, match="StackCTR.*depth 3"):
        model.loop_step(state)
    with pytest.raises(ConfigError, match="depth 4"):
        model(batch, depth=4)
    # the blocks are unshared: a LoopCTR with the same seed differs from depth 2 on
    assert len(model.loops) == 2 and model.loops[0] is not model.loops[1]


def test_negative_depth_is_rejected() -> None:
    with pytest.raises(ConfigError, match="depth"):
        _model()(random_batch(toy_spec(), 4), depth=-1)
