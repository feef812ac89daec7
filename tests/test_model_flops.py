"""Analytic FLOPs agree with torch's FlopCounterMode for every part and full forwards.

FlopCounterMode does not count the fused attention kernel LoopCTR runs on CPU
(`scaled_dot_product_attention` -> flash attention), so the counts here are taken with
`sdpa_kernel(SDPBackend.MATH)`, where the same call decomposes into the matmuls it counts;
`test_fused_attention_is_invisible_to_the_flop_counter` shows what the default path misses:
exactly the attention score and weighted-value products.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from adaptive_loop.model import build_model, count_parameters, tiny_config
from adaptive_loop.model.testing import random_batch, toy_spec

B = 8
CASES = {
    "loopctr_moe_hc": ({}, {}),
    "loopctr_moe_off": ({"moe": False, "moe_attention": False}, {}),
    "loopctr_hc_off_static": ({"hyper_connections": False, "top_k": 1}, {}),
    "loopctr_static_hc_compress": ({"hc_dynamic": False, "hc_streams": 3, "seq_compress_queries": 3}, {}),
    "loopctr_no_sequence": ({"n_experts": 3, "top_k": 3}, {"history": 0}),
    "stackctr": ({"name": "stackctr"}, {}),
    "deepfm": ({"name": "deepfm"}, {}),
    "deepfm_dense": ({"name": "deepfm", "numeric_mode": "dense"}, {}),
    "dcnv2": ({"name": "dcnv2"}, {}),
    "dcnv2_lowrank_parallel": ({"name": "dcnv2", "dcn_low_rank": 3, "dcn_structure": "parallel"}, {}),
}


def _counted(fn, fused_attention: bool = False) -> tuple[float, object]:
    backends = [SDPBackend.FLASH_ATTENTION] if fused_attention else [SDPBackend.MATH]
    with sdpa_kernel(backends), FlopCounterMode(display=False) as counter:
        result = fn()
    return counter.get_total_flops() / B, result


def _close(counted: float, analytic: float) -> None:
    assert analytic == pytest.approx(counted, rel=1e-9), (counted, analytic)


def _unseen_loop_flops(model) -> float:
    """Multiply-adds of one loop step that FlopCounterMode cannot see: the hyper-connection merge
    (n d per token) and residual mix (n^2 d) run as broadcast multiply-and-sum (see `hyper.py`),
    and the analytic count keeps them; two hyper-connections per step."""
    config = model.config
    if not model.train_loops or not config.hyper_connections:
        return 0.0
    n, d, t = config.hc_streams, config.d_model, model.geometry.n_tokens
    return 2.0 * t * (2 * n * d + 2 * n * n * d)


@pytest.mark.parametrize("case", list(CASES))
def test_flops_match_flop_counter(case: str) -> None:
    overrides, spec_args = CASES[case]
    spec = toy_spec(**spec_args)
    torch.manual_seed(0)
    model = build_model(tiny_config(**overrides), spec).eval()
    batch = random_batch(spec, B)
    flops = model.flops()
    with torch.no_grad():
        entry, state = _counted(lambda: model.enter(batch))
        _close(entry, flops.entry)
        exit_, _ = _counted(lambda: model.exit(state))
        _close(exit_, flops.exit)
        if model.train_loops:
            loop, _ = _counted(lambda: model.loop_step(state))
            _close(loop + _unseen_loop_flops(model), flops.loop)
        depths = [0, 1, model.train_loops] if model.train_loops else [0]
        if case.startswith("loopctr"):
            depths.append(model.train_loops + 2)
        for depth in depths:
            total, _ = _counted(lambda: model(batch, depth=depth))
            _close(total + depth * _unseen_loop_flops(model), flops.entry + depth * flops.loop + (depth + 1) * flops.exit)
    assert flops.summary > 0


def test_count_parameters_splits_embeddings() -> None:
    model = build_model(tiny_config(), toy_spec())
    dense, embedding = count_parameters(model)
    tables = sum(t.weight.numel() for t in model.entry.tokenizer.embeddings.tables)
    assert embedding == tables
    assert dense + embedding == sum(p.numel() for p in model.parameters())


def test_fused_attention_is_invisible_to_the_flop_counter() -> None:
    """With the default fused kernel FlopCounterMode misses exactly Q K^T and weights @ V (2 T_q T_k d each)."""
    spec = toy_spec()
    torch.manual_seed(0)
    model = build_model(tiny_config(), spec).eval()
    batch = random_batch(spec, B)
    geom, d = model.geometry, model.config.d_model
    core = {"self": 4.0 * geom.n_tokens**2 * d, "exit": 4.0 * geom.n_glb * geom.n_seq * d}
    depth = 2
    with torch.no_grad():
        fused, _ = _counted(lambda: model(batch, depth=depth), fused_attention=True)
        plain, _ = _counted(lambda: model(batch, depth=depth))
    unseen = (1 + depth) * core["self"] + (depth + 1) * core["exit"]
    assert plain == pytest.approx(fused + unseen, rel=1e-9)
    flops = model.flops()
    _close(fused + unseen + depth * _unseen_loop_flops(model), flops.entry + depth * flops.loop + (depth + 1) * flops.exit)
