"""The optimised model code computes the same function as a plain statement of the maths.

`_reference_model` writes LoopCTR's forward the direct way (explicit attention matmuls,
every MoE expert on every token, the paper's hyper-connection formulas). Here the model,
with the same weights, must match it at every depth: logits, hidden summaries and the
residual streams, in eval mode, and the gradients of every parameter in training mode
without dropout. The hand-written backward passes are also checked with `gradcheck`.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from _reference_model import reference_forward
from adaptive_loop.model import build_model, tiny_config
from adaptive_loop.model.dropout import Dropout, dropout
from adaptive_loop.model.hyper import HyperConnection, _Merge, _Write, stream_major
from adaptive_loop.model.moe import ExpertFFN, ExpertLinear, Router
from adaptive_loop.model.testing import random_batch, toy_spec

CASES = {
    "default": {},
    "d32_4heads": {"d_model": 32, "n_heads": 4, "embed_dim": 8},
    "static_hc_3_streams_compress": {"hc_dynamic": False, "hc_streams": 3, "seq_compress_queries": 3},
    "moe_off": {"moe": False, "moe_attention": False},
    "hc_off_top1": {"hyper_connections": False, "top_k": 1},
    "stackctr": {"name": "stackctr"},
    "full_entry_mean_all_raw_weights": {"entry_groups": "full", "summary": "mean_all", "router_renormalize": False},
    "prefix_entry_3_of_3_experts_sum": {"entry_groups": "prefix", "n_experts": 3, "top_k": 3, "hc_readout": "sum"},
}


def _model(overrides: dict, spec) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(tiny_config(**overrides), spec)
    with torch.no_grad():  # move the dynamic hyper-connection weights off their zero init
        for name, p in model.named_parameters():
            if ".hc_" in name and name.endswith(".weight") and p.dim() == 2:
                p.normal_(0.0, 0.5)
    return model


@pytest.mark.parametrize("case", list(CASES))
def test_every_depth_matches_the_plain_maths(case: str) -> None:
    spec = toy_spec()
    model = _model(CASES[case], spec).eval()
    depth = model.train_loops if case == "stackctr" else model.train_loops + 2
    batch = random_batch(spec, 48, seed=1)  # every history length occurs, empty ones included
    with torch.no_grad():
        out = model(batch, depth=depth, return_hidden=True)
        logits, hidden, streams = reference_forward(model, batch, depth)
        torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.hidden, hidden, rtol=1e-5, atol=1e-5)
        state = model.enter(batch)
        for k in range(depth + 1):  # the step-wise API: residual streams at every depth
            if k:
                state = model.loop_step(state)
            torch.testing.assert_close(state.streams, streams[k], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(model.exit(state), logits[:, k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["default", "static_hc_3_streams_compress", "hc_off_top1", "full_entry_mean_all_raw_weights"])
def test_gradients_match_the_plain_maths(case: str) -> None:
    spec = toy_spec()
    model = _model(CASES[case], spec).train()  # dropout is 0 in the tiny config
    batch = random_batch(spec, 24, seed=2)
    weights = torch.randn(24, model.train_loops + 1, generator=torch.Generator().manual_seed(3))
    (model(batch).logits * weights).sum().backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    logits, _, _ = reference_forward(model, batch, model.train_loops)
    (logits * weights).sum().backward()
    plain = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert fast.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-4, atol=1e-5, msg=name)


def test_hyper_connection_backward_passes() -> None:
    torch.manual_seed(0)
    n, b, t, d = 3, 2, 4, 5
    Hs = torch.randn(n, b, t, d, dtype=torch.float64, requires_grad=True)
    y = torch.randn(b, t, d, dtype=torch.float64, requires_grad=True)
    C = torch.randn(n, b, t, n + 2, dtype=torch.float64, requires_grad=True)
    C_static = torch.randn(n, 1, 1, n + 2, dtype=torch.float64, requires_grad=True)
    for coef in (C, C_static):
        assert torch.autograd.gradcheck(lambda h, c: _Merge.apply(h, c[..., 0]), (Hs, coef))
        assert torch.autograd.gradcheck(lambda h, yy, c: _Write.apply(h, yy, c[..., 1 : n + 1], c[..., n + 1]), (Hs, y, coef))


def test_hyper_connection_coefficients_are_row_per_stream() -> None:
    torch.manual_seed(0)
    hc = HyperConnection(6, 2, 1, True, 0.3)
    with torch.no_grad():
        hc.weight.normal_()
    H = torch.randn(3, 4, 2, 6)
    C = hc.coefficients(stream_major(H))  # [n, B, T, n + 2]
    t = torch.tanh(hc.norm(H) @ hc.weight)  # token-major [B, T, n, n + 2]
    torch.testing.assert_close(C[..., 0], (hc.static_m + hc.scale_a * t[..., 0]).permute(2, 0, 1))
    torch.testing.assert_close(C[..., 1:3], (hc.static_r + hc.scale_a * t[..., 1:3]).permute(2, 0, 1, 3))
    torch.testing.assert_close(C[..., 3], (hc.static_b + hc.scale_b * t[..., 3]).permute(2, 0, 1))


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_expert_layer_backward_passes(top_k: int) -> None:
    torch.manual_seed(0)
    n, d, e = 9, 4, 4
    router = Router(d, e, top_k, True, 1.0).double()
    x = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    routing = router(x)
    linear = ExpertLinear(e, d, 3, 0.5).double()
    ffn = ExpertFFN(e, d, 5, 0.5).double()
    with torch.no_grad():
        linear.bias.normal_()
        ffn.b1.normal_()
        ffn.b2.normal_()
    w = routing.weights_t.detach().requires_grad_()
    from adaptive_loop.model.moe import _ExpertFFNFn, _ExpertLinearFn

    assert torch.autograd.gradcheck(
        lambda xx, ww, bb, rw: _ExpertLinearFn.apply(xx, ww, bb, rw, routing), (x, linear.weight, linear.bias, w)
    )
    assert torch.autograd.gradcheck(
        lambda xx, w1, b1, w2, b2, rw: _ExpertFFNFn.apply(xx, w1, b1, w2, b2, rw, routing),
        (x, ffn.w1, ffn.b1, ffn.w2, ffn.b2, w),
    )


def test_an_expert_without_tokens_gets_zero_gradients() -> None:
    torch.manual_seed(0)
    router = Router(4, 4, 1, True, 1.0)
    with torch.no_grad():
        router.proj.weight.zero_()
        router.proj.weight[0, 0] = 10.0  # every token with x0 > 0 goes to expert 0, the others split 1..3 by ties
    x = torch.randn(20, 4).abs()
    routing = router(x)
    assert routing.counts[0] == 20 and sum(routing.counts[1:]) == 0
    layer = ExpertFFN(4, 4, 3, 0.5)
    layer(x, routing).sum().backward()
    assert layer.w1.grad[0].abs().sum() > 0
    assert torch.count_nonzero(layer.w1.grad[1:]) == 0 and torch.count_nonzero(layer.b2.grad[1:]) == 0


def test_empty_batch() -> None:
    spec = toy_spec()
    model = _model({}, spec).eval()
    batch = random_batch(spec, 4)
    batch = batch.subset(torch.arange(0))
    with torch.no_grad():
        out = model(batch, depth=2, return_hidden=True)
    assert out.logits.shape == (0, 3) and out.hidden.shape[0] == 0


@pytest.mark.parametrize("backend", [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH])
def test_fused_attention_gives_zero_output_for_queries_without_keys(backend) -> None:
    q, k, v = (torch.randn(3, 2, 4, 5, requires_grad=True) for _ in range(3))
    mask = torch.ones(3, 1, 4, 4, dtype=torch.bool)
    mask[1, :, 2] = False  # query 2 of row 1 sees no key
    mask[2] = False  # row 2 sees nothing
    with sdpa_kernel(backend):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out.sum().backward()
    assert torch.count_nonzero(out[1, :, 2]) == 0 and torch.count_nonzero(out[2]) == 0
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_aux_loss_is_skipped_without_gradients_only() -> None:
    spec = toy_spec()
    model = _model({}, spec).eval()
    batch = random_batch(spec, 16)
    with torch.no_grad():
        assert model(batch).aux_loss.item() == 0.0
    assert model(batch).aux_loss.item() > 0.5  # Switch loss: about 1 for balanced routing


def test_dropout_drops_p_and_keeps_the_expectation() -> None:
    x = torch.ones(400, 500)
    layer = Dropout(0.1).train()
    torch.manual_seed(0)
    y = layer(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.005)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and len(values) == 2 and values[1] == pytest.approx(65536 / (65536 - round(0.1 * 65536)))
    torch.manual_seed(0)
    assert torch.equal(layer(x), y)  # the global seed fixes the mask
    assert not torch.equal(layer(x), y)
    assert layer.eval()(x) is x
    assert dropout(x, 0.0) is x
    x2 = torch.randn(7, 3, requires_grad=True)  # odd sizes and gradients: the kept elements' scale
    torch.manual_seed(1)
    out = dropout(x2, 0.5)
    out.sum().backward()
    torch.testing.assert_close(x2.grad, (out != 0).float() * 2.0)
