"""ACT trained jointly with LoopCTR (train.halting), the trainer's epoch callback, and
post-hoc heads trained from the model's step-wise API instead of a trace file."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_OVERRIDES

from adaptive_loop.config import load_config
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.harness.online import simulate_online
from adaptive_loop.io import load_checkpoint
from adaptive_loop.runs import load_split
from adaptive_loop.trace_builder import trace_from_model
from adaptive_loop.training import train
from adaptive_loop.workflows import trace_run
from controllers.learned.act import ACTHalting


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory, tiny_config_path):
    config = load_config(tiny_config_path, TINY_OVERRIDES + ["data.options.n_rows=1200", "train.max_steps_per_epoch=4",
                                                            "train.halting.enabled=true", "train.num_threads=1"])
    run_dir = tmp_path_factory.mktemp("joint")
    calls = []
    result = train(config, run_dir, epoch_callbacks=[lambda epoch, record: calls.append((epoch, record.monitor))])
    return config, run_dir, result, calls


def test_epoch_callback_sees_every_epoch(joint_run):
    config, _, result, calls = joint_run
    assert [e for e, _ in calls] == list(range(len(result.history)))
    assert [m for _, m in calls] == [r.monitor for r in result.history]


def test_joint_head_is_saved_and_runs_as_a_controller(joint_run):
    config, run_dir, _, _ = joint_run
    payload = load_checkpoint(run_dir / "checkpoints" / "best.pt")  # weights_only=True
    assert set(payload["halting"]) == {"state", "layout"}
    assert payload["halting"]["layout"]["n_depths"] == config.model.train_loops + 1
    trace = trace_run(run_dir, "valid", run_dir / "trace_valid.parquet").trace
    assert trace.max_depth > config.model.train_loops
    c = ACTHalting(mode="joint", checkpoint=str(run_dir / "checkpoints" / "best.pt")).fit(trace)
    assert c.stop_depth_ == config.model.train_loops
    for eps in (0.02, 0.3, 0.9):
        c.set_params(eps=eps)
        d = c.decide(trace)
        assert d.depth.max() <= config.model.train_loops
        np.testing.assert_array_equal(simulate_online(c, trace), d.depth)
        at_l = d.depth == config.model.train_loops
        np.testing.assert_allclose(d.controller_flops[at_l], config.model.train_loops * c.flops_per_step)
    lo, hi = c.cost_range(trace)
    c.calibrate(trace, 0.5 * (lo + hi))
    np.testing.assert_array_equal(simulate_online(c, trace), c.decide(trace).depth)


def test_a_checkpoint_without_the_head_is_refused_in_joint_mode(joint_run, tmp_path):
    from adaptive_loop.io import save_checkpoint

    _, run_dir, _, _ = joint_run
    payload = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    del payload["halting"]
    plain = save_checkpoint(tmp_path / "plain.pt", payload)
    trace = trace_run(run_dir, "valid", tmp_path / "trace.parquet").trace
    with pytest.raises(CheckpointError, match="halting"):
        ACTHalting(mode="joint", checkpoint=str(plain)).fit(trace)


def test_resuming_with_another_halting_setting_is_refused(joint_run, tmp_path):
    config, run_dir, _, _ = joint_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    off = load_config(None, [])
    off = type(config)(**{**config.__dict__})
    off.train = type(config.train)(**{**config.train.__dict__, "epochs": config.train.epochs + 1,
                                      "halting": type(config.train.halting)()})
    with pytest.raises(CheckpointError, match="halting"):
        train(off, copy, resume=True)


def test_halting_config_is_validated():
    with pytest.raises(ConfigError, match="eps"):
        load_config(None, ["train.halting.eps=1.5"])
    with pytest.raises(ConfigError, match="halting"):
        load_config(None, ["train.halting.enable=true"])


def test_stepwise_trace_equals_the_written_trace_and_trains_a_head(joint_run, tmp_path):
    from adaptive_loop.runs import load_run

    _, run_dir, _, _ = joint_run
    written = trace_run(run_dir, "valid", tmp_path / "trace.parquet").trace
    run = load_run(run_dir)
    data = load_split(run, "valid")
    stepwise = trace_from_model(run.model, data, written.max_depth, written.meta, batch_size=512)
    np.testing.assert_allclose(stepwise.logits, written.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stepwise.hidden, written.hidden, rtol=1e-5, atol=1e-5)
    c = ACTHalting(epochs=3, hidden=4).fit(stepwise)
    np.testing.assert_array_equal(simulate_online(c, written), c.decide(written).depth)
