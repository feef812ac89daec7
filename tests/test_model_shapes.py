"""Shapes, masks, padding, empty histories, K > L, determinism and row independence."""

from __future__ import annotations

import pytest
import torch

from adaptive_loop.data.batch import Batch
from adaptive_loop.errors import ConfigError
from adaptive_loop.model import DepthModel, build_model, tiny_config
from adaptive_loop.model.testing import random_batch, toy_spec

B = 24


def _model(seed: int = 0, spec=None, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(tiny_config(**overrides), spec or toy_spec()).eval()


@pytest.mark.parametrize("name", ["loopctr", "stackctr", "deepfm", "dcnv2"])
def test_forward_shapes(name: str) -> None:
    model = _model(name=name)
    assert isinstance(model, DepthModel)
    out = model(random_batch(toy_spec(), B), return_hidden=True)
    k = model.train_loops
    assert out.logits.shape == (B, k + 1)
    assert out.hidden.shape == (B, k + 1, model.hidden_dim)
    assert out.aux_loss.shape == ()
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.hidden).all()


def test_loopctr_runs_beyond_trained_depth() -> None:
    model = _model(train_loops=2)
    out = model(random_batch(toy_spec(), B), depth=6)
    assert out.logits.shape == (B, 7)
    assert torch.isfinite(out.logits).all()
    assert not torch.allclose(out.logits[:, 5], out.logits[:, 6])


@pytest.mark.parametrize("overrides", [{}, {"seq_compress_queries": 3}, {"entry_groups": "prefix"}, {"entry_groups": "seq_self"},
                                       {"hyper_connections": False}])
def test_sequence_tokens_do_not_depend_on_the_candidate(overrides: dict) -> None:
    model = _model(**overrides)
    batch = random_batch(toy_spec(), B)
    other = Batch(cat=batch.cat.clone(), num=batch.num + 1.0, seq=dict(batch.seq), labels=batch.labels)
    other.cat[:, -1] = (batch.cat[:, -1] + 7) % 50  # the candidate item
    other.cat[:, 0] = (batch.cat[:, 0] + 3) % 50
    a, b = model.enter(batch), model.enter(other)
    n = a.n_seq
    assert n > 0
    for _ in range(3):
        torch.testing.assert_close(a.streams[:, :n], b.streams[:, :n], rtol=0, atol=1e-6)
        assert not torch.allclose(a.streams[:, n:], b.streams[:, n:])
        a, b = model.loop_step(a), model.loop_step(b)


def test_seq_self_entry_leaves_every_lookup_among_events_to_the_loop() -> None:
    """With entry_groups='seq_self' an event's Entry output depends on that event alone; one loop step mixes them."""
    model = _model(entry_groups="seq_self")
    batch = random_batch(toy_spec(), B, min_history=2)
    seq = {name: ids.clone() for name, ids in batch.seq.items()}
    name = model.entry.tokenizer.token_seqs[0]
    seq[name][:, 0] = torch.where(seq[name][:, 0] > 0, seq[name][:, 0] % 40 + 1, seq[name][:, 0])
    other = Batch(cat=batch.cat, num=batch.num, seq=seq, labels=batch.labels)
    a, b = model.enter(batch), model.enter(other)
    changed = (batch.seq[name][:, 0] != seq[name][:, 0])
    assert changed.any()
    torch.testing.assert_close(a.streams[:, 1 : a.n_seq], b.streams[:, 1 : a.n_seq], rtol=0, atol=1e-6)
    assert not torch.allclose(a.streams[changed, 0], b.streams[changed, 0])
    a, b = model.loop_step(a), model.loop_step(b)
    assert not torch.allclose(a.streams[changed, 1 : a.n_seq], b.streams[changed, 1 : a.n_seq])


def test_full_entry_attention_lets_the_candidate_reach_the_sequence() -> None:
    model = _model(entry_groups="full")
    batch = random_batch(toy_spec(), B, min_history=1)
    other = Batch(cat=batch.cat.clone(), num=batch.num, seq=batch.seq, labels=batch.labels)
    other.cat[:, -1] = (batch.cat[:, -1] + 7) % 50
    n = model.enter(batch).n_seq
    assert not torch.allclose(model.enter(batch).streams[:, :n], model.enter(other).streams[:, :n])


@pytest.mark.parametrize("name", ["loopctr", "stackctr", "deepfm", "dcnv2"])
def test_extra_padding_columns_do_not_change_outputs(name: str) -> None:
    spec = toy_spec(history=10)
    model = _model(spec=spec, name=name)
    short = random_batch(toy_spec(history=6), B)  # same tables, histories of at most 6 events
    padded = Batch(
        cat=short.cat,
        num=short.num,
        seq={k: torch.nn.functional.pad(v, (0, 4 if k != "genre" else 2)) for k, v in short.seq.items()},
        labels=short.labels,
    )
    a, b = model(short, return_hidden=True), model(padded, return_hidden=True)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.hidden, b.hidden, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"seq_compress_queries": 2}, {"summary": "mean_all"}])
def test_empty_histories_give_finite_outputs_and_gradients(overrides: dict) -> None:
    model = _model(**overrides).train()
    batch = random_batch(toy_spec(), B)
    for v in batch.seq.values():
        v[: B // 2] = 0
    out = model(batch, return_hidden=True)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.hidden).all()
    (out.logits.sum() + out.aux_loss).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_specs_without_sequences_or_with_token_groups() -> None:
    plain = _model(spec=toy_spec(history=0, pooled=False))
    assert plain(random_batch(toy_spec(history=0, pooled=False), B)).logits.shape == (B, 4)
    spec = toy_spec(token_groups=(("c0", "c1"), ("n0", "n1", "genre")))
    grouped = _model(spec=spec)
    assert grouped.entry.tokenizer.n_glb == 2 + 4  # two groups + c2, c3, c4, item
    assert grouped(random_batch(spec, B)).logits.shape == (B, 4)


@pytest.mark.parametrize("groups, fragment", [((("nope",),), "nope"), ((("hist",),), "hist"), ((("c0",), ("c0",)), "c0")])
def test_bad_token_groups_raise(groups: tuple, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        _model(spec=toy_spec(token_groups=groups))


@pytest.mark.parametrize("name", ["loopctr", "stackctr", "deepfm", "dcnv2"])
def test_same_seed_same_init_same_logits(name: str) -> None:
    batch = random_batch(toy_spec(), B)
    a = _model(seed=3, name=name)(batch).logits
    b = _model(seed=3, name=name)(batch).logits
    c = _model(seed=4, name=name)(batch).logits
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", ["loopctr", "stackctr", "deepfm", "dcnv2"])
def test_rows_are_independent_in_eval(name: str) -> None:
    model = _model(name=name)
    batch = random_batch(toy_spec(), 64)
    full = model(batch).logits
    rows = torch.tensor([5, 0, 63, 17])
    torch.testing.assert_close(model(batch.subset(rows)).logits, full[rows], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(batch.subset(torch.tensor([9]))).logits, full[9:10], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["deepfm", "dcnv2"])
def test_baselines_have_depth_zero_only(name: str) -> None:
    model = _model(name=name)
    batch = random_batch(toy_spec(), B)
    state = model.enter(batch)
    torch.testing.assert_close(model.exit(state), model(batch).logits[:, 0])
    assert len(state.subset(torch.tensor([0, 2]))) == 2
    with pytest.raises(ConfigError, match="no loop block"):
        model.loop_step(state)
    with pytest.raises(ConfigError, match="depth"):
        model(batch, depth=1)


@pytest.mark.parametrize(
    "name, overrides",
    [("deepfm", {"numeric_mode": "dense"}), ("dcnv2", {"numeric_mode": "dense"}),
     ("dcnv2", {"dcn_low_rank": 4, "dcn_structure": "parallel"})],
)
def test_baseline_options(name: str, overrides: dict) -> None:
    out = _model(name=name, **overrides)(random_batch(toy_spec(), B))
    assert out.logits.shape == (B, 1) and torch.isfinite(out.logits).all()
