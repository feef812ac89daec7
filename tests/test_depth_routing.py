"""Depth routing trained with LoopCTR (train.routing): the rules, the routed loss, the trainer
hooks, the router as a controller (offline == online == engine) and its FLOPs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from adaptive_loop.config import RoutingConfig, load_config
from adaptive_loop.engine import AdaptiveScorer
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.harness.online import simulate_online
from adaptive_loop.io import load_checkpoint
from adaptive_loop.model import build_model, tiny_config
from adaptive_loop.model.halting import HaltingHead
from adaptive_loop.model.testing import random_batch, toy_spec
from adaptive_loop.routing_rules import capacity_thresholds, expert_choice_depths, threshold_depths
from adaptive_loop.runs import load_run, load_split
from adaptive_loop.training import train
from adaptive_loop.training.routing import JointRouting
from adaptive_loop.workflows import trace_run
from controllers.learned.router import RouterController
from controllers.learned.torch_fit import mlp_flops, mlp_matmul_flops
from controllers.persistence import load_controller, save_controller

CAPACITY = (0.5, 0.25)


# --------------------------------------------------------------------------- rules
def test_expert_choice_keeps_the_capacity_of_every_batch():
    scores = np.random.default_rng(0).normal(size=(1000, 2))
    depth = expert_choice_depths(scores, CAPACITY, batch_size=200)
    for start in range(0, 1000, 200):
        part = depth[start : start + 200]
        assert (part >= 1).sum() == 100 and (part >= 2).sum() == 50
    # a row's depth depends on its batch: the same rows in other batches get other depths
    assert not np.array_equal(depth, expert_choice_depths(scores, CAPACITY, batch_size=300))


def test_capacity_thresholds_reproduce_one_batch_top_k():
    scores = np.random.default_rng(1).normal(size=(500, 2))
    theta = capacity_thresholds(scores, CAPACITY)
    np.testing.assert_array_equal(threshold_depths(scores, theta), expert_choice_depths(scores, CAPACITY, 500))
    assert threshold_depths(scores, [np.inf, np.inf]).max() == 0
    assert threshold_depths(scores, [-np.inf, -np.inf]).min() == 2


def test_routing_config_is_checked():
    with pytest.raises(ConfigError, match="non-increasing"):
        RoutingConfig(mode="expert_choice", capacity=(0.2, 0.5))
    with pytest.raises(ConfigError, match="mode"):
        RoutingConfig(mode="topk")
    with pytest.raises(ConfigError, match="one share per step"):
        RoutingConfig(mode="expert_choice", capacity=(0.5,)).capacities(2)
    assert RoutingConfig(mode="expert_choice").capacities(3) == (0.5, 0.25, 0.125)


def test_matched_depth_weights_are_the_exit_shares_plus_the_process_term():
    # capacities 0.5, 0.3, 0.15: half the batch exits at depth 0, 0.2 at 1, 0.15 at 2 and 0.15 at 3
    routed = RoutingConfig(mode="expert_choice", capacity=(0.5, 0.3, 0.15), process_weight=1.0)
    assert np.allclose(routed.matched_depth_weights(3), (0.75, 0.45, 0.40, 0.40))
    no_process = RoutingConfig(mode="expert_choice", process_weight=0.0)  # halving default: 1/2, 1/4 continue
    assert np.allclose(no_process.matched_depth_weights(2), (0.5, 0.25, 0.25))
    assert sum(RoutingConfig(mode="expert_choice", process_weight=0.3).matched_depth_weights(4)) == pytest.approx(1.3)


# --------------------------------------------------------------------------- routed loss
def _routing(mode: str, **kw) -> tuple[torch.nn.Module, JointRouting, object]:
    torch.manual_seed(0)
    model = build_model(tiny_config(hyper_connections=False, train_loops=2), toy_spec())
    routing = JointRouting(RoutingConfig(mode=mode, capacity=CAPACITY, **kw), model, batch_size=32)
    return model, routing, random_batch(toy_spec(), 32, seed=3)


def test_the_gate_changes_no_value_and_trains_the_router():
    model, routing, batch = _routing("expert_choice", selection_weight=0.0, process_weight=0.0)
    model.eval()  # no dropout: the routed forward must give the plain forward's logits
    step = routing.step_loss(model, batch, aux_weight=0.0)
    with torch.no_grad():
        plain = model(batch).logits
    z = plain[torch.arange(len(batch)), step.exit_depth]
    per_row = torch.nn.functional.binary_cross_entropy_with_logits(z, batch.labels)
    assert float(step.exit_bce.detach()) == pytest.approx(float(per_row.mean()), rel=1e-5)
    assert torch.bincount(step.exit_depth, minlength=3).tolist() == [16, 8, 8]
    step.loss.backward()
    # only the straight-through gate connects the router to this loss
    assert float(routing.head.fc1.weight.grad.abs().sum()) > 0


def test_token_choice_trains_the_router_towards_the_capacity():
    model, routing, batch = _routing("token_choice", balance_weight=1.0)
    step = routing.step_loss(model, batch, aux_weight=0.01)
    assert float(step.router_loss.detach()) > 0
    step.loss.backward()
    assert float(routing.head.fc1.weight.grad.abs().sum()) > 0


# --------------------------------------------------------------------------- FLOPs
@pytest.mark.parametrize("hidden", [0, 6])
def test_router_flops_match_the_flop_counter(hidden):
    head = HaltingHead(20, hidden, 3)
    with FlopCounterMode(display=False) as counter:
        head.at_depth(torch.randn(8, 20), 1)
    assert counter.get_total_flops() / 8 == mlp_matmul_flops(20, hidden)
    assert mlp_flops(20, hidden) > mlp_matmul_flops(20, hidden)  # plus standardising, biases, ReLU


def test_a_routed_training_forward_costs_the_model_plus_one_router_call_per_step():
    model, routing, batch = _routing("expert_choice")
    flops, n = model.flops(), len(batch)
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        routing.step_loss(model, batch, aux_weight=0.0)
    steps = model.train_loops
    router = mlp_matmul_flops(routing.hidden_dim, routing.config.hidden)
    expected = flops.entry + steps * flops.loop + (steps + 1) * flops.exit + steps * router
    assert counter.get_total_flops() / n == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- training + controller
@pytest.fixture(scope="module")
def routed_run(tmp_path_factory, tiny_config_path):
    config = load_config(tiny_config_path, TINY_OVERRIDES + [
        "data.options.n_rows=1500", "train.max_steps_per_epoch=5", "train.num_threads=1",
        "train.routing.mode=expert_choice", "train.routing.capacity=[0.5, 0.25]", "train.batch_size=128",
    ])
    run_dir = tmp_path_factory.mktemp("routed")
    result = train(config, run_dir)
    valid = trace_run(run_dir, "valid", run_dir / "trace_valid.parquet").trace
    test = trace_run(run_dir, "test", run_dir / "trace_test.parquet").trace
    return config, run_dir, result, valid, test


def test_training_saves_the_router_and_monitors_the_routed_auc(routed_run):
    config, run_dir, result, _, _ = routed_run
    payload = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert payload["routing"]["layout"]["capacity"] == list(CAPACITY)
    assert payload["routing"]["layout"]["n_depths"] == config.model.train_loops
    for record in result.history:
        assert record.valid_routed_auc is not None and 0.0 < record.valid_routed_auc < 1.0
        assert record.monitor == record.valid_routed_auc


def test_resuming_with_routing_switched_off_is_refused(routed_run, tmp_path):
    config, run_dir, _, _, _ = routed_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    off = type(config)(**{**config.__dict__})
    off.train = type(config.train)(**{**config.train.__dict__, "epochs": config.train.epochs + 1,
                                      "routing": RoutingConfig()})
    with pytest.raises(CheckpointError, match="routing"):
        train(off, copy, resume=True)


def test_a_minimised_monitor_is_refused(tiny_config_path, tmp_path):
    config = load_config(tiny_config_path, TINY_OVERRIDES + ["train.routing.mode=token_choice", "train.monitor=logloss@L"])
    with pytest.raises(ConfigError, match="routing.monitor"):
        train(config, tmp_path / "run")


def test_router_controller_offline_online_and_engine_agree(routed_run, tmp_path):
    config, run_dir, _, valid, test = routed_run
    checkpoint = str(run_dir / "checkpoints" / "best.pt")
    c = RouterController(checkpoint=checkpoint).fit(valid)
    assert c.stop_depth_ == config.model.train_loops
    # on the calibration trace the per-sample thresholds keep the trained shares
    d = c.decide(valid)
    n = valid.n_samples
    assert (d.depth >= 1).sum() == round(0.5 * n) and (d.depth >= 2).sum() == round(0.25 * n)
    assert np.all(d.exits == 1)
    c.calibrate(test, float(np.mean(c.decide(test).cost)) * 0.98)
    decision = c.decide(test)
    np.testing.assert_array_equal(simulate_online(c, test), decision.depth)
    run = load_run(run_dir)
    scored = AdaptiveScorer(run.model, c).score_encoded(load_split(run, "test"))
    np.testing.assert_array_equal(scored.depth, decision.depth)
    np.testing.assert_array_equal(scored.exits, decision.exits)
    np.testing.assert_allclose(scored.flops, decision.cost, rtol=1e-12)
    np.testing.assert_allclose(scored.logits, decision.logits(test), rtol=1e-4, atol=1e-5)
    # saved and loaded: the same decisions
    save_controller(c, tmp_path / "router")
    again = load_controller(tmp_path / "router")
    np.testing.assert_array_equal(again.decide(test).depth, decision.depth)
    aux = RouterController(checkpoint=checkpoint, thresholds="aux").fit(valid)
    np.testing.assert_array_equal(simulate_online(aux, test), aux.decide(test).depth)


def test_router_controller_needs_a_routed_checkpoint(routed_run, tmp_path):
    from adaptive_loop.io import save_checkpoint

    _, run_dir, _, valid, _ = routed_run
    payload = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    del payload["routing"]
    plain = save_checkpoint(tmp_path / "plain.pt", payload)
    with pytest.raises(CheckpointError, match="router"):
        RouterController(checkpoint=str(plain)).fit(valid)
    with pytest.raises(ConfigError, match="checkpoint"):
        RouterController().fit(valid)
