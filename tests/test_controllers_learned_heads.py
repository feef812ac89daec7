"""Learned incremental controllers (ACT halting head, exit gate): losses, offline == online,
scikit-learn conventions, honest cost, ground truth never read, saving and loading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from _trace_factory import make_trace
from sklearn.base import clone

from adaptive_loop.errors import CheckpointError, ConfigError, NotFittedError, TraceError
from adaptive_loop.harness.online import simulate_online
from adaptive_loop.model.halting import (
    HaltingHead,
    act_distribution,
    exit_distribution,
    exit_gate_loss,
    geometric_prior,
    improvement_targets,
    step_features,
)
from controllers import make_controller
from controllers.learned.act import ACTHalting
from controllers.learned.exit_gate import ExitGate
from controllers.learned.heads import step_features_numpy, trace_step_features
from controllers.learned.torch_fit import head_forward, mlp_flops, to_numpy_weights
from controllers.persistence import load_controller, save_controller

FAST = {"epochs": 4, "batch_size": 256, "hidden": 8}
CASES = [
    ("act", FAST),
    ("act", {**FAST, "hidden": 0, "use_hidden": False, "tau": 0.02, "loss": "rank"}),
    ("exit_gate", FAST),
    ("exit_gate", {**FAST, "prior_rate": 0.3, "stage2_epochs": 2}),
]


@pytest.fixture(scope="module")
def traces():
    return (make_trace(1500, max_depth=4, seed=3, flops_summary=40.0, split="valid"),
            make_trace(1200, max_depth=4, seed=4, flops_summary=40.0))


@pytest.fixture(scope="module")
def fitted(traces):
    valid, _ = traces
    return {i: make_controller(name, **params).fit(valid) for i, (name, params) in enumerate(CASES)}


# ----------------------------------------------------------------------------- losses
def test_act_distribution_is_a_distribution_that_halts_at_one_minus_eps():
    torch.manual_seed(0)
    logits = torch.randn(64, 5) * 2
    p, n_step, remainder = act_distribution(logits, eps=0.1)
    torch.testing.assert_close(p.sum(1), torch.ones(64, dtype=p.dtype))
    h = torch.sigmoid(logits)
    cum = torch.cumsum(h, 1)
    for i in range(64):
        n = int(n_step[i])
        assert n == 4 or cum[i, n] >= 0.9
        assert all(cum[i, j] < 0.9 for j in range(n))
        assert float(remainder[i]) == pytest.approx(1 - (float(cum[i, n - 1]) if n > 0 else 0.0))
        assert torch.all(p[i, n + 1 :] == 0)


def test_exit_distribution_and_prior_sum_to_one():
    logits = torch.randn(32, 6)
    p = exit_distribution(logits)
    torch.testing.assert_close(p.sum(1), torch.ones(32))
    lam = torch.sigmoid(logits)
    expected1 = lam[:, 1] * (1 - lam[:, 0])
    torch.testing.assert_close(p[:, 1], expected1)
    assert float(geometric_prior(6, 0.3).sum()) == pytest.approx(1.0)


def test_exit_gate_loss_prefers_the_lower_loss_depth():
    losses = torch.tensor([[1.0, 0.1, 1.0]])
    stop_at_1 = torch.tensor([[-9.0, 9.0, 0.0]])
    stop_at_0 = torch.tensor([[9.0, 0.0, 0.0]])
    assert exit_gate_loss(stop_at_1, losses, beta=0.0) < exit_gate_loss(stop_at_0, losses, beta=0.0)
    w = improvement_targets(torch.tensor([[0.5, 0.2, 0.2]]), k=50.0, gamma=0.005)
    assert float(w[0, 0]) > 0.99 and float(w[0, 1]) < 0.5  # the first step helps, the second does not


def test_numpy_features_and_head_match_torch():
    trace = make_trace(50, max_depth=3, seed=1)
    x_np = trace_step_features(trace, use_hidden=True)
    x_t = step_features(torch.from_numpy(trace.hidden.astype(np.float64)), torch.from_numpy(trace.logits.astype(np.float64)))
    np.testing.assert_allclose(x_np, x_t.numpy(), rtol=1e-6, atol=1e-6)
    t = 2
    per_step = step_features_numpy(trace.hidden[:, t], trace.logits[:, t], trace.logits[:, t - 1])
    np.testing.assert_allclose(per_step, x_np[:, t], rtol=1e-6, atol=1e-6)
    torch.manual_seed(0)
    head = HaltingHead(x_np.shape[2], 8, 4).double()
    head.set_stats(torch.from_numpy(x_np.reshape(-1, x_np.shape[2]).mean(0).astype(np.float64)),
                   torch.from_numpy(x_np.reshape(-1, x_np.shape[2]).std(0).astype(np.float64)))
    torch.nn.init.normal_(head.depth_bias.weight)
    with torch.no_grad():
        ref = head(torch.from_numpy(x_np.astype(np.float64))).numpy()
    weights = to_numpy_weights(head.export())
    np.testing.assert_allclose(head_forward(weights, x_np[:, t], t), ref[:, t], rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- protocol
@pytest.mark.parametrize("case", range(len(CASES)))
def test_offline_equals_online(traces, fitted, case):
    _, test = traces
    c = fitted[case]
    np.testing.assert_array_equal(simulate_online(c, test), c.decide(test).depth)
    for budget in np.linspace(*c.cost_range(test), 5)[1:-1]:
        c.calibrate(test, float(budget))
        assert c.decide(test).mean_cost <= budget + 1e-9
        np.testing.assert_array_equal(simulate_online(c, test), c.decide(test).depth)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_sklearn_conventions(traces, fitted, case):
    valid, test = traces
    name, params = CASES[case]
    fresh = make_controller(name, **params)
    with pytest.raises(NotFittedError):
        fresh.decide(test)
    c = fitted[case]
    twin = clone(c)
    assert twin.get_params() == c.get_params()
    with pytest.raises(NotFittedError):
        twin.decide(test)
    assert all(k.endswith("_") for k in vars(c) if not k.startswith("_") and k not in c.get_params())
    restored = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(restored.decide(test).depth, c.decide(test).depth)


def test_same_seed_same_head(traces):
    valid, test = traces
    a = ACTHalting(**FAST, seed=5).fit(valid)
    b = ACTHalting(**FAST, seed=5).fit(valid)
    np.testing.assert_array_equal(a.score_matrix(test), b.score_matrix(test))


def test_cost_counts_summary_head_and_rule(traces, fitted):
    _, test = traces
    c = fitted[0]  # ACT with hidden summaries
    per_step = 40.0 + 2.0 + mlp_flops(c.in_dim_, c.head_hidden_) + 10.0 + 3.0
    assert c.flops_per_step == pytest.approx(per_step)
    d = c.decide(test)
    k = test.max_depth
    np.testing.assert_allclose(d.controller_flops, np.minimum(d.depth + 1, k) * per_step)
    np.testing.assert_array_equal(d.exits, d.depth + 1)
    no_summary = fitted[1]
    assert no_summary.flops_per_step == pytest.approx(2.0 + mlp_flops(no_summary.in_dim_, 0) + 10.0 + 3.0)


def test_knob_moves_cost_the_right_way(traces, fitted):
    _, test = traces
    act, gate = fitted[0], fitted[2]
    with act.knob_set_to(0.01):
        deep = act.decide(test).mean_cost
    with act.knob_set_to(0.9):
        shallow = act.decide(test).mean_cost
    assert shallow < deep
    with gate.knob_set_to(0.05):
        shallow = gate.decide(test).mean_cost
    with gate.knob_set_to(0.99):
        deep = gate.decide(test).mean_cost
    assert shallow < deep


def test_ground_truth_is_never_an_input(traces, fitted):
    """The heads read summaries and logits only: scrambling needed_depth changes nothing."""
    _, test = traces
    scrambled = test.subset(np.arange(test.n_samples))
    scrambled.features["needed_depth"] = np.random.default_rng(0).permutation(scrambled.features["needed_depth"])
    for c in fitted.values():
        np.testing.assert_array_equal(c.decide(scrambled).depth, c.decide(test).depth)


def test_invalid_params_and_missing_summaries(traces):
    valid, _ = traces
    with pytest.raises(ConfigError, match="train_eps"):
        ACTHalting(train_eps=1.5).fit(valid)
    with pytest.raises(ConfigError, match="prior_rate"):
        ExitGate(prior_rate=2.0).fit(valid)
    with pytest.raises(ConfigError, match="loss"):
        ExitGate(loss="auc").fit(valid)
    with pytest.raises(ConfigError, match="checkpoint"):
        ACTHalting(mode="joint").fit(valid)
    no_hidden = make_trace(200, max_depth=4, seed=1, hidden_dim=None)
    with pytest.raises(TraceError, match="hidden"):
        ACTHalting(**FAST).fit(no_hidden)


def test_save_and_load_round_trip(traces, fitted, tmp_path):
    valid, test = traces
    for i, c in fitted.items():
        lo, hi = c.cost_range(valid)
        c.calibrate(valid, 0.5 * (lo + hi))
        save_controller(c, tmp_path / f"c{i}")
        back = load_controller(tmp_path / f"c{i}")
        assert back.get_params() == c.get_params()
        assert back.calibration_ == c.calibration_
        np.testing.assert_array_equal(back.decide(test).depth, c.decide(test).depth)
        np.testing.assert_array_equal(simulate_online(back, test), c.decide(test).depth)
    head = tmp_path / "c0" / "head.pt"
    head.write_bytes(head.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="head.pt"):
        load_controller(tmp_path / "c0")


def test_learned_head_beats_no_information(traces):
    """On the synthetic factory trace the summary carries the progress towards the needed depth:
    a trained gate at the same cost must rank better than a head that was never trained."""
    valid, test = traces
    trained = ExitGate(epochs=8, hidden=8, seed=0).fit(valid)
    untrained = ExitGate(epochs=1, hidden=8, lr=1e-9, seed=0).fit(valid)
    budget = 0.5 * sum(trained.cost_range(valid))
    from adaptive_loop.harness.controller_report import evaluate

    a = evaluate(trained.calibrate(valid, budget), test).auc
    b = evaluate(untrained.calibrate(valid, budget), test).auc
    assert a > b
