"""Hyper-connections start as a plain pre-norm residual block."""

from __future__ import annotations

import pytest
import torch

from adaptive_loop.model import build_model, tiny_config
from adaptive_loop.model.attention import attention_mask, structure_mask
from adaptive_loop.model.hyper import expand_streams, read_out
from adaptive_loop.model.loop_block import LoopBlock
from adaptive_loop.model.testing import random_batch, toy_spec


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dynamic", [True, False])
def test_hyper_connected_block_at_init_equals_plain_pre_norm_block(n: int, dynamic: bool) -> None:
    torch.manual_seed(0)
    config = tiny_config(hc_streams=n, hc_dynamic=dynamic)
    block = LoopBlock(config).eval()
    h = torch.randn(5, 7, config.d_model)
    valid = torch.ones(5, 7, dtype=torch.bool)
    valid[0, :2] = False
    H = block(expand_streams(h, n), valid, 3)
    mask = attention_mask(structure_mask(3, 4, "prefix"), valid)
    plain = block.layer(h, mask, valid)  # h + Attn(LN h), then + FFN(LN h)
    for i in range(n):  # every stream, hence the mean read-out, is the plain block's output
        torch.testing.assert_close(H[:, :, i], plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(read_out(H, "mean"), plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(read_out(H, "sum"), n * plain, rtol=1e-5, atol=1e-5)


def test_model_with_hyper_connections_equals_model_without_at_init() -> None:
    spec = toy_spec()
    torch.manual_seed(0)
    plain = build_model(tiny_config(hyper_connections=False), spec).eval()
    hyper = build_model(tiny_config(hc_streams=3), spec).eval()
    missing, unexpected = hyper.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".hc_" in key for key in missing)
    batch = random_batch(spec, 16)
    torch.testing.assert_close(hyper(batch, depth=4).logits, plain(batch, depth=4).logits, rtol=1e-5, atol=1e-5)


def test_hyper_connections_become_input_dependent_after_an_update() -> None:
    torch.manual_seed(0)
    config = tiny_config()
    block = LoopBlock(config)
    H = expand_streams(torch.randn(4, 5, config.d_model), 2)
    valid = torch.ones(4, 5, dtype=torch.bool)
    block(H, valid, 2).pow(2).sum().backward()
    assert block.hc_attn.weight.grad.abs().sum() > 0  # W_* move off zero on the first step
