"""Every parameter a forward pass uses receives a gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adaptive_loop.model import build_model, tiny_config
from adaptive_loop.model.testing import random_batch, toy_spec

# s_a, s_b and the hyper-connection norm only act through tanh(norm(H) W) with W = 0 at
# init, so their first gradient is exactly 0 (W itself does get one).
ZERO_AT_INIT = ("scale_a", "scale_b", "norm.weight", "norm.bias")


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("loopctr", {}),
        ("loopctr", {"balance_loss": "entropy", "seq_compress_queries": 2, "dropout": 0.1}),
        ("loopctr", {"moe": False, "moe_attention": False, "hyper_connections": False}),
        ("stackctr", {}),
        ("deepfm", {}),
        ("dcnv2", {}),
    ],
)
def test_gradient_reaches_every_parameter(name: str, overrides: dict) -> None:
    torch.manual_seed(0)
    spec = toy_spec()
    model = build_model(tiny_config(name=name, **overrides), spec).train()
    batch = random_batch(spec, 64, min_history=1)
    out = model(batch)
    labels = batch.labels[:, None].expand_as(out.logits)
    loss = F.binary_cross_entropy_with_logits(out.logits, labels) + 0.01 * out.aux_loss
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        if not (".hc_" in pname and pname.endswith(ZERO_AT_INIT)):
            assert p.grad.abs().sum() > 0, pname
    if model.train_loops and model.config.moe:
        assert out.aux_loss > 0
