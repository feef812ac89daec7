"""Optuna tuning of LoopCTR's own hyperparameters, with per-epoch pruning and resume."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TINY_OVERRIDES

from adaptive_loop.cli import tune_command
from adaptive_loop.config import load_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.errors import ConfigError
from adaptive_loop.training.model_tuning import ModelSearchSpace, SearchParam, apply_model_params, tune_model

FAST = TINY_OVERRIDES + ["data.options.n_rows=1000", "train.max_steps_per_epoch=3", "train.num_threads=1"]
SPACE = ModelSearchSpace((
    SearchParam("model.train_loops", 1, 2, integer=True),
    SearchParam("model.d_model", choices=(8, 16)),
    SearchParam("train.lr", 1e-3, 5e-3, log=True),
    SearchParam("model.tower_hidden", choices=([16], [16, 8])),
))


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
        assert 1 <= trial.params["model.train_loops"] <= 2
        assert trial.params["model.tower_hidden"] in ("[16]", "[16, 8]")
    best = result.best_params
    assert result.best_value == pytest.approx(max(t.value for t in study.trials if t.value is not None))
    resumed = tune_model(config, tmp_path, n_trials=3, seed=0, space=SPACE, data=data)
    assert len(resumed.trials) == 3 and resumed.trials[0]["params"] == result.trials[0]["params"]
    assert best.keys() == {"model.train_loops", "model.d_model", "train.lr", "model.tower_hidden"}
    run_config = load_config(Path(resumed.best_run_dir) / "config.yaml", saved_run=True)
    assert list(run_config.model.tower_hidden) == yaml.safe_load(resumed.best_params["model.tower_hidden"])
    assert run_config.train.lr == pytest.approx(resumed.best_params["train.lr"])


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
    cfg = apply_model_params(config, {"model.train_loops": 2, "model.d_model": 12, "train.lr": 0.002,
                                      "model.aux_weight": 0.05, "model.tower_hidden": "[24, 12]"})
    assert cfg.model.d_model % cfg.model.n_heads == 0 and cfg.model.train_loops == 2
    assert cfg.train.lr == 0.002 and cfg.model.aux_weight == 0.05 and list(cfg.model.tower_hidden) == [24, 12]


def test_search_space_files_are_checked(tmp_path):
    recipe = ModelSearchSpace.load("recipe")
    assert {"train.embedding_l2", "train.lr", "model.tower_hidden"} <= {p.key for p in recipe.params}
    with pytest.raises(ConfigError, match="nope"):
        ModelSearchSpace.load("nope")
    bad = tmp_path / "space.yaml"
    bad.write_text("train.lr: {low: 0.1, high: 0.01}\n")
    with pytest.raises(ConfigError, match="train.lr"):
        ModelSearchSpace.load(bad)
    bad.write_text("lr: {choices: [1, 2]}\n")
    with pytest.raises(ConfigError, match="dotted"):
        ModelSearchSpace.load(bad)
    bad.write_text("train.lr: {low: 0.0, high: 0.01, log: true}\n")
    with pytest.raises(ConfigError, match="log range"):
        ModelSearchSpace.load(bad)


def test_trial_with_an_unknown_key_names_it(setup):
    config, _ = setup
    with pytest.raises(ConfigError, match="train.lr_typo"):
        apply_model_params(config, {"train.lr_typo": 0.1})


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
