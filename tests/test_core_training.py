"""Training: process supervision, determinism, resumption, checkpoints that fit their config."""

import dataclasses

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_OVERRIDES

from adaptive_loop.config import load_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.io import load_checkpoint, save_checkpoint
from adaptive_loop.runs import load_run
from adaptive_loop.training import Monitor, process_supervised_loss, train
from adaptive_loop.training.per_depth import predict_depths

# keys only the baselines' configs have, which flat run configs of LoopCTR held too
OTHER_MODELS_KEYS = {"numeric_mode": "embed", "deepfm_hidden": [256, 128], "dcn_cross_layers": 3, "dcn_low_rank": 0,
                     "dcn_hidden": [256, 128], "dcn_structure": "stacked"}


@pytest.fixture(scope="module")
def tiny(tiny_config_path):
    config = load_config(tiny_config_path, TINY_OVERRIDES + ["data.options.n_rows=1500"])
    return config, prepare_data(config.data, seed=config.seed)


def _final_logits(run_dir, data) -> np.ndarray:
    run = load_run(run_dir, checkpoint="last")
    logits, _ = predict_depths(run.model, data.valid, max_depth=3)
    return logits


def test_loss_is_mean_bce_over_depths_plus_weighted_aux() -> None:
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    labels = torch.tensor([1.0, 0.0])
    total, bce = process_supervised_loss(logits, labels, torch.tensor(0.5), aux_weight=0.1)
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[:, None].expand(-1, 2), reduction="none")
    assert bce.item() == pytest.approx(per.mean().item())
    assert total.item() == pytest.approx(per.mean().item() + 0.05)


def test_same_seed_gives_the_same_per_depth_logits(tiny, tmp_path) -> None:
    config, data = tiny
    train(config, tmp_path / "a", data=data)
    train(config, tmp_path / "b", data=data)
    np.testing.assert_array_equal(_final_logits(tmp_path / "a", data), _final_logits(tmp_path / "b", data))


def test_resumed_run_matches_an_uninterrupted_one(tiny, tmp_path) -> None:
    config, data = tiny
    train(config, tmp_path / "full", data=data)
    first_half = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1))
    train(first_half, tmp_path / "resumed", data=data)
    # Simulate a checkpoint written before a config option existed: resuming must still work
    # (the missing key takes its default), as long as the option keeps its default.
    last = tmp_path / "resumed" / "checkpoints" / "last.pt"
    payload = load_checkpoint(last)
    newest_data_key = sorted(payload["config"]["data"])[-1]
    del payload["config"]["data"][newest_data_key]
    # ... and one written when a run config's `model:` section held every model's keys: the
    # checkpoint and the run's config.yaml must still resume and load.
    payload["config"]["model"].update(OTHER_MODELS_KEYS)
    save_checkpoint(last, payload)
    saved = yaml.safe_load((tmp_path / "resumed" / "config.yaml").read_text())
    saved["model"].update(OTHER_MODELS_KEYS)
    (tmp_path / "resumed" / "config.yaml").write_text(yaml.safe_dump(saved))
    result = train(config, tmp_path / "resumed", data=data, resume=True)
    assert len(result.history) == config.train.epochs
    np.testing.assert_allclose(_final_logits(tmp_path / "full", data), _final_logits(tmp_path / "resumed", data),
                               rtol=0, atol=1e-6)


def test_checkpoint_from_another_config_is_refused(tiny, tmp_path) -> None:
    config, data = tiny
    train(config, tmp_path / "run", data=data)
    bigger = (tmp_path / "run" / "config.yaml").read_text().replace("d_model: 16", "d_model: 32")
    (tmp_path / "run" / "config.yaml").write_text(bigger)
    with pytest.raises(CheckpointError, match="does not fit this model config"):
        load_run(tmp_path / "run")


def test_monitor_parsing() -> None:
    assert Monitor.parse("auc@L", 3) == Monitor("auc", 3, True)
    assert Monitor.parse("mean_logloss", 3) == Monitor("logloss", None, False)
    with pytest.raises(ConfigError, match="deeper than"):
        Monitor.parse("auc@5", 3)
    with pytest.raises(ConfigError, match="not one of"):
        Monitor.parse("accuracy", 3)
