"""Top-k routing, batched experts, load-balancing losses."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from adaptive_loop.model.moe import AuxCollector, ExpertFFN, ExpertLinear, Router, RouterStats, balance_loss


@pytest.mark.parametrize("renormalize", [True, False])
def test_router_selects_k_distinct_experts_with_designed_weights(renormalize: bool) -> None:
    torch.manual_seed(0)
    router = Router(8, n_experts=4, top_k=2, renormalize=renormalize, init_std=1.0)
    x = torch.randn(50, 8)
    r = router(x)
    assert r.experts.shape == (50, 2)
    assert (r.experts[:, 0] != r.experts[:, 1]).all()
    top = r.probs.topk(2, dim=-1)
    assert torch.equal(r.experts, top.indices)
    if renormalize:
        torch.testing.assert_close(r.weights.sum(-1), torch.ones(50))
        torch.testing.assert_close(r.weights, top.values / top.values.sum(-1, keepdim=True))
    else:
        torch.testing.assert_close(r.weights, top.values)
    assert r.counts == torch.bincount(r.experts.reshape(-1), minlength=4).tolist()
    assert torch.equal(torch.bincount(r.tokens, minlength=50), torch.full((50,), 2))
    start = 0
    for e, count in enumerate(r.counts):  # assignment rows are grouped by expert, tokens ascending
        tokens = r.tokens[start : start + count]
        assert torch.equal(tokens, torch.nonzero((r.experts == e).any(-1)).squeeze(1))
        assert torch.equal(r.rows_t.t()[r.experts == e], torch.arange(start, start + count))
        start += count


@pytest.mark.parametrize("layer", ["linear", "ffn"])
def test_batched_experts_match_a_per_token_reference_and_spend_k_experts(layer: str) -> None:
    torch.manual_seed(0)
    n, d, e, k = 40, 6, 4, 2
    router = Router(d, e, k, True, 1.0)
    x = torch.randn(n, d)
    r = router(x)
    if layer == "linear":
        mod = ExpertLinear(e, d, 5, 0.5)
        per_expert = torch.einsum("nd,edo->neo", x, mod.weight) + mod.bias  # every expert on every token
        flops = 2 * n * k * d * 5
    else:
        mod = ExpertFFN(e, d, 7, 0.5)
        hidden = torch.nn.functional.gelu(torch.einsum("nd,edh->neh", x, mod.w1) + mod.b1)
        per_expert = torch.einsum("neh,ehd->ned", hidden, mod.w2) + mod.b2
        flops = 2 * n * k * (d * 7 + 7 * d)
    chosen = per_expert.gather(1, r.experts[:, :, None].expand(-1, -1, per_expert.shape[-1]))
    reference = (chosen * r.weights[:, :, None]).sum(1)
    with FlopCounterMode(display=False) as counter:
        out = mod(x, r)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    assert counter.get_total_flops() == flops


def _stats(probs: list[float], frac: list[float], key: int = 0) -> RouterStats:
    return RouterStats(key, torch.tensor(probs), torch.tensor(frac))


def test_switch_loss_is_minimal_for_uniform_routing() -> None:
    uniform = balance_loss([_stats([0.25] * 4, [0.25] * 4)], "switch")
    collapsed = balance_loss([_stats([1.0, 0, 0, 0], [1.0, 0, 0, 0])], "switch")
    skewed = balance_loss([_stats([0.4, 0.3, 0.2, 0.1], [0.5, 0.3, 0.2, 0.0])], "switch")
    assert uniform.item() == pytest.approx(1.0)
    assert collapsed.item() == pytest.approx(4.0)
    assert uniform < skewed < collapsed


def test_entropy_loss_is_minimal_for_uniform_and_averages_over_iterations() -> None:
    assert balance_loss([_stats([0.25] * 4, [0.25] * 4)], "entropy").item() == pytest.approx(0.0, abs=1e-6)
    assert balance_loss([_stats([1.0, 0, 0, 0], [1.0, 0, 0, 0])], "entropy").item() == pytest.approx(math.log(4))
    # Two iterations of one shared router, each collapsed on a different pair: the mean is uniform.
    same_router = [_stats([0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], 1), _stats([0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], 1)]
    two_routers = [_stats([0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], 1), _stats([0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], 2)]
    assert balance_loss(same_router, "entropy").item() == pytest.approx(0.0, abs=1e-6)
    assert balance_loss(two_routers, "entropy").item() == pytest.approx(math.log(2))


def test_router_statistics_and_collapse_raise_the_loss() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    router = Router(8, 4, 2, True, 0.01)
    balanced, collapsed = AuxCollector(), AuxCollector()
    router(x, aux=balanced)
    with torch.no_grad():
        router.proj.weight.zero_()
        router.proj.weight[0] = 50 * x.mean(0).sign()
        router.proj.weight[1] = 25 * x.mean(0).sign()
    router(x.abs() * x.mean(0).sign(), aux=collapsed)
    for kind in ("switch", "entropy"):
        assert balanced.loss(kind) < collapsed.loss(kind)
    stats = balanced.stats[0]
    torch.testing.assert_close(stats.frac.sum(), torch.tensor(1.0))
    torch.testing.assert_close(stats.probs_mean.sum(), torch.tensor(1.0))


def test_padding_tokens_are_excluded_from_balance_statistics() -> None:
    torch.manual_seed(0)
    router = Router(8, 4, 2, True, 1.0)
    x = torch.randn(30, 8)
    valid = torch.arange(30) < 10
    masked, reference = AuxCollector(), AuxCollector()
    router(x, valid, masked)
    router(x[:10], None, reference)
    torch.testing.assert_close(masked.stats[0].probs_mean, reference.stats[0].probs_mean)
    torch.testing.assert_close(masked.stats[0].frac, reference.stats[0].frac)
