"""Sequence-side sharing (one user, many candidates) gives the same results as scoring every row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptive_loop.engine import AdaptiveScorer
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.shared_sequence import SharedSequenceModel, group_rows, sequence_key
from controllers.registry import make_controller
from _engine_helpers import K, ZeroLogitUpfront, encoded, tiny_model, trace_of

# Sharing changes matmul shapes, so results may differ in the last float bit, never more.
TOL = 1e-6

VARIANTS = {
    "default": {},
    "plain_residuals_dense": {"moe": False, "moe_attention": False, "hyper_connections": False},
    "compressed_mean_all": {"seq_compress_queries": 2, "summary": "mean_all"},
    "prefix_entry_static_hc": {"entry_groups": "prefix", "hc_dynamic": False},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shared_states_equal_plain_states_at_every_depth(variant: str) -> None:
    torch.set_num_threads(1)
    model = tiny_model(seed=1, **VARIANTS[variant])
    data = encoded(96, seed=4, users=12)
    batch = data.to_batch()
    shared = SharedSequenceModel(model)
    with torch.no_grad():
        full = model(batch, depth=K, return_hidden=True)
        state = shared.enter(batch)
        assert state.n_sequences == len(np.unique(data.seq["hist"], axis=0)) <= 12
        rows = torch.arange(96)
        for d in range(K + 1):
            torch.testing.assert_close(shared.exit(state), full.logits[rows, d], atol=TOL, rtol=0)
            torch.testing.assert_close(shared.summarize(state), full.hidden[rows, d], atol=TOL, rtol=0)
            if d == 1:  # continue with a few rows only: unused sequences are dropped
                rows = torch.tensor([90, 3, 17, 17, 44])
                state = state.subset(rows)
                assert state.n_sequences <= 4
            state = shared.loop_step(state)


def test_grouping_is_exact_on_the_sequence_ids() -> None:
    model = tiny_model()
    data = encoded(50, seed=9, users=5)
    data.seq["hist_cat"][7, 0] = (data.seq["hist_cat"][7, 0] + 1) % 12  # one id differs: its own group
    first, owner = group_rows(sequence_key(model, data.to_batch()))
    key = np.concatenate([data.seq["hist"], data.seq["hist_cat"]], axis=1)
    assert first.numel() == len(np.unique(key, axis=0))
    np.testing.assert_array_equal(key[first.numpy()][owner.numpy()], key)  # every row maps to an identical sequence


@pytest.mark.parametrize("controller_name", ["confidence", "upfront"])
def test_scorer_with_sharing_equals_scorer_without(controller_name: str) -> None:
    torch.set_num_threads(1)
    model = tiny_model(seed=2)
    valid, test = encoded(800, seed=1), encoded(600, seed=3, users=40)
    trace = trace_of(model, valid, "valid")
    if controller_name == "confidence":
        controller = make_controller("confidence", threshold=0.02).fit(trace)
    else:
        controller = ZeroLogitUpfront().fit(trace)
    plain = AdaptiveScorer(model, controller).score_encoded(test)
    shared = AdaptiveScorer(model, controller, share_sequence=True).score_encoded(test)
    assert len(np.unique(plain.depth)) >= 2
    assert shared.n_sequences is not None and shared.n_sequences <= 40
    np.testing.assert_array_equal(shared.depth, plain.depth)
    np.testing.assert_array_equal(shared.exits, plain.exits)
    np.testing.assert_array_equal(shared.flops, plain.flops)
    np.testing.assert_allclose(shared.logits, plain.logits, atol=TOL, rtol=0)


def test_sharing_refuses_models_where_it_would_change_results() -> None:
    with pytest.raises(ConfigError, match="entry_groups"):
        SharedSequenceModel(tiny_model(entry_groups="full"))
    with pytest.raises(ConfigError, match="LoopCTR"):
        SharedSequenceModel(tiny_model(name="dcnv2"))
