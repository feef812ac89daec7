"""Optuna tuning of controllers: budget constraint, Pareto front, storage URLs, resume, CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import optuna
import pytest
from _trace_factory import make_trace

from adaptive_loop.cli import tune_command
from adaptive_loop.errors import BudgetError, ConfigError
from adaptive_loop.harness.controller_tuning import budget_at_depth, refit, split_trace, tune_controller
from adaptive_loop.studies import open_storage, storage_url
from adaptive_loop.trace import save_trace
from controllers.persistence import load_controller


@pytest.fixture(scope="module")
def valid():
    return make_trace(1600, max_depth=4, seed=21, split="valid")


def test_split_is_seeded_and_disjoint(valid):
    fit, tune = split_trace(valid, 0.5, seed=3)
    assert fit.n_samples + tune.n_samples == valid.n_samples
    assert not set(fit.ids) & set(tune.ids)
    again, _ = split_trace(valid, 0.5, seed=3)
    np.testing.assert_array_equal(again.ids, fit.ids)


def test_single_objective_respects_the_budget_and_resumes(valid, tmp_path):
    budget = budget_at_depth(valid, 1.5)
    first = tune_controller("confidence", valid, budget=budget, n_trials=3, out_dir=str(tmp_path), seed=0)
    assert first.n_trials == 3
    assert all(t["user_attrs"]["mean_cost"] <= budget + 1e-9 for t in first.trials if t["state"] == "COMPLETE")
    kept = [(t["number"], t["params"], t["values"]) for t in first.trials]
    assert (tmp_path / "study.db").is_file()
    second = tune_controller("confidence", valid, budget=budget, n_trials=5, out_dir=str(tmp_path), seed=0)
    assert second.n_trials == 5
    assert [(t["number"], t["params"], t["values"]) for t in second.trials[:3]] == kept  # finished trials are kept
    third = tune_controller("confidence", valid, budget=budget, n_trials=5, out_dir=str(tmp_path), seed=0)
    assert len(third.trials) == 5  # nothing left to run
    with pytest.raises(ConfigError, match="budget"):
        tune_controller("confidence", valid, budget=budget * 1.1, n_trials=6, out_dir=str(tmp_path))


def test_unreachable_budget_is_a_violated_constraint(valid, tmp_path):
    with pytest.raises(BudgetError, match="no trial"):
        tune_controller("stability", valid, budget=1.0, n_trials=2, out_dir=str(tmp_path))
    study = optuna.load_study(study_name="stability-budget", storage=storage_url(None, tmp_path))
    assert all(t.user_attrs["violation"] > 0 for t in study.trials)


def test_learned_controller_and_refit(tmp_path):
    valid = make_trace(1600, max_depth=4, seed=21, split="valid", flops=(1e5, 2e4, 5e3))  # a head is cheap next to a loop
    budget = budget_at_depth(valid, 1.0)
    result = tune_controller("act", valid, budget=budget, n_trials=2, base_params={"epochs": 3}, out_dir=str(tmp_path))
    assert {"tau", "train_eps", "hidden", "lr", "loss"} <= set(result.best_params)
    c = refit("act", {**result.base_params, **result.best_params}, valid, budget)
    assert c.calibration_.mean_cost <= budget + 1e-9
    assert c.epochs == 3


def test_values_fixed_by_the_space_reach_the_refit(tmp_path):
    """On a trace without summaries the space fixes use_hidden=False without asking the sampler."""
    plain = make_trace(1200, max_depth=4, seed=23, split="valid", hidden_dim=None, flops=(1e5, 2e4, 5e3))
    budget = budget_at_depth(plain, 1.0)
    result = tune_controller("exit_gate", plain, budget=budget, n_trials=2, base_params={"epochs": 2}, out_dir=str(tmp_path))
    assert result.best_params["use_hidden"] is False
    assert refit("exit_gate", {**result.base_params, **result.best_params}, plain, budget).uses_hidden_ is False


def test_multi_objective_pareto_front_with_a_journal(valid, tmp_path):
    url = f"journal:{tmp_path / 'journal.log'}"
    result = tune_controller("lgbm_depth", valid, multi_objective=True, n_trials=6, storage=url,
                             base_params={"n_estimators": 20}, out_dir=str(tmp_path), seed=1)
    assert result.storage == url and (tmp_path / "journal.log").is_file()
    front = result.pareto
    assert front and all(np.diff([p["mean_cost"] for p in front]) >= 0)
    assert all(np.diff([p["auc"] for p in front]) > 0)  # along a Pareto front AUC rises with cost
    done = [t for t in result.trials if t["state"] == "COMPLETE"]
    for p in front:  # nothing dominates a Pareto point
        assert not any(t["values"][0] > p["auc"] and t["values"][1] < p["mean_cost"] for t in done)
    resumed = tune_controller("lgbm_depth", valid, multi_objective=True, n_trials=7, storage=url,
                              base_params={"n_estimators": 20}, out_dir=str(tmp_path), seed=1)
    assert resumed.n_trials == 7


def test_storage_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a database URL"):
        open_storage("nonsense", tmp_path)
    with pytest.raises(ConfigError, match="cannot open Optuna storage"):
        open_storage("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    with pytest.raises(ConfigError, match="journal"):
        open_storage("journal:", tmp_path)
    assert storage_url(None, tmp_path).startswith("sqlite:///") and storage_url(None, tmp_path).endswith("study.db")


def test_cli_tunes_saves_and_reports(valid, tmp_path, capsys):
    trace = save_trace(valid, tmp_path / "valid.parquet")
    test = save_trace(make_trace(800, max_depth=4, seed=22), tmp_path / "test.parquet")
    parser = argparse.ArgumentParser(prog="adaptive-loop")
    tune_command.add_subcommand(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "out"
    args = parser.parse_args(["tune", "controller", "--trace", str(trace), "--controller", "exit_gate", "--budget-depth", "1",
                              "--trials", "2", "--param", "epochs=2", "--out", str(out), "--test-trace", str(test),
                              "--no-progress"])
    assert args.func(args) == 0
    report = json.loads((out / "tune_report.json").read_text())
    assert report["result"]["controller"] == "exit_gate" and "test" in report
    assert (out / "trials.csv").is_file() and (out / "study.db").is_file()
    c = load_controller(out / "controller")
    assert c.epochs == 2 and c.calibration_ is not None
    assert "best AUC" in capsys.readouterr().out
    bad = parser.parse_args(["tune", "controller", "--trace", str(trace), "--controller", "act", "--trials", "1",
                             "--out", str(out)])
    with pytest.raises(ConfigError, match="budget"):
        bad.func(bad)
