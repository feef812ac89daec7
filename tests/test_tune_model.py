"""Optuna tuning of LoopCTR's own hyperparameters, with per-epoch pruning and resume."""

from __future__ import annotations

import argparse
import json

import optuna
import pytest
from conftest import TINY_OVERRIDES

from adaptive_loop.cli import tune_command
from adaptive_loop.config import load_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.errors import ConfigError
from adaptive_loop.training.model_tuning import ModelSearchSpace, apply_model_params, tune_model

FAST = TINY_OVERRIDES + ["data.options.n_rows=1000", "train.max_steps_per_epoch=3", "train.num_threads=1"]
SPACE = ModelSearchSpace(train_loops=(1, 2), d_model=(8, 16), lr=(1e-3, 5e-3), aux_weight=(1e-3, 1e-2))


@pytest.fixture(scope="module")
def setup(tiny_config_path):
    config = load_config(tiny_config_path, FAST)
    return config, prepare_data(config.data, seed=config.seed)


def test_trials_report_every_epoch_and_resume(setup, tmp_path):
    config, data = setup
    result = tune_model(config, tmp_path, n_trials=2, seed=0, space=SPACE, data=data)
    assert result.n_finished + result.n_pruned == 2 and result.direction == "maximize"
    study = optuna.load_study(study_name="loopctr", storage=result.storage)
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == list(range(config.train.epochs))
        assert (tmp_path / "trials" / f"trial_{trial.number}" / "checkpoints" / "best.pt").is_file()
        assert SPACE.train_loops[0] <= trial.params["train_loops"] <= SPACE.train_loops[1]
    best = result.best_params
    assert result.best_value == pytest.approx(max(t.value for t in study.trials if t.value is not None))
    resumed = tune_model(config, tmp_path, n_trials=3, seed=0, space=SPACE, data=data)
    assert len(resumed.trials) == 3 and resumed.trials[0]["params"] == result.trials[0]["params"]
    assert best.keys() == {"train_loops", "d_model", "lr", "aux_weight"}


def test_pruned_trials_stop_training_early(setup, tmp_path):
    config, data = setup
    always = optuna.pruners.ThresholdPruner(lower=2.0)  # an AUC is never >= 2: prune after the first report
    with pytest.raises(ConfigError, match="no completed trial"):
        tune_model(config, tmp_path, n_trials=1, space=SPACE, data=data, pruner=always)
    study = optuna.load_study(study_name="loopctr", storage=f"sqlite:///{tmp_path / 'study.db'}")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    history = json.loads((tmp_path / "trials" / "trial_0" / "history.json").read_text())
    assert len(history) == 1 < config.train.epochs


def test_trial_config_keeps_heads_dividing_the_width(setup):
    config, _ = setup
    cfg = apply_model_params(config, {"train_loops": 2, "d_model": 12, "lr": 0.002, "aux_weight": 0.05})
    assert cfg.model.d_model % cfg.model.n_heads == 0 and cfg.model.train_loops == 2
    assert cfg.train.lr == 0.002 and cfg.model.aux_weight == 0.05


def test_cli(tmp_path, tiny_config_path, capsys):
    parser = argparse.ArgumentParser(prog="adaptive-loop")
    tune_command.add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tune", "model", "--config", str(tiny_config_path), "--trials", "1", "--epochs", "1",
                              "--out", str(tmp_path), "--storage", f"journal:{tmp_path / 'j.log'}", "--no-progress"]
                             + [x for o in FAST for x in ("--set", o)])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "tune_report.json").read_text())
    assert report["storage"].startswith("journal:") and report["n_finished"] == 1
    assert "best auc@L" in capsys.readouterr().out
