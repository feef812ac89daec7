"""`benchmarks/study_summary.py`: a tuning study summarised while it may still be running."""

from __future__ import annotations

import json

import optuna
import pytest

from _bench_scripts import load_benchmark

summary_script = load_benchmark("study_summary")


def _study(path):
    """A study with a finished base trial, a better sampled one, a pruned one and one left running."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path}", direction="maximize")
    dist = {"train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    for value, attrs, state, reports in [
        (0.70, {"base_config": True}, optuna.trial.TrialState.COMPLETE, [0.69, 0.70]),
        (0.72, {}, optuna.trial.TrialState.COMPLETE, [0.71, 0.72, 0.72]),
        (None, {}, optuna.trial.TrialState.PRUNED, [0.60, 0.65]),
    ]:
        study.add_trial(optuna.trial.create_trial(
            params={"train.lr": 1e-3}, distributions=dist, value=value, state=state, user_attrs=attrs,
            intermediate_values=dict(enumerate(reports)),
        ))
    study.ask(dist)  # left unfinished on purpose: a trial still running (or interrupted)
    return study


def test_summary_reads_every_trial_and_picks_the_best_finished(tmp_path):
    _study(tmp_path / "study.db")
    summary = summary_script.summarize(str(tmp_path / "study.db"), "s")
    assert [t.state for t in summary.trials] == ["COMPLETE", "COMPLETE", "PRUNED", "RUNNING"]
    assert summary.best_trial == 1 and summary.best_value == pytest.approx(0.72)
    assert summary.trials[0].base_config and not summary.trials[1].base_config
    assert summary.trials[2].value == pytest.approx(0.65)  # a pruned trial shows its best report
    assert summary.trials[2].epochs == 2
    assert summary.trials[3].value is None and summary.trials[3].epochs == 0


def test_script_writes_json_and_markdown_without_touching_the_study(tmp_path):
    db = tmp_path / "study.db"
    _study(db)
    before = db.read_bytes()
    out = tmp_path / "out" / "ml_L0"
    assert summary_script.main(["--storage", str(db), "--study-name", "s", "--out", str(out),
                                "--command", "adaptive-loop tune model --config x"]) == 0
    assert db.read_bytes() == before
    raw = json.loads((tmp_path / "out" / "ml_L0.json").read_text())
    assert raw["best_trial"] == 1 and len(raw["trials"]) == 4
    text = (tmp_path / "out" / "ml_L0.md").read_text()
    assert "adaptive-loop tune model --config x" in text
    assert "Best finished trial: 1 (a sampled setting), value 0.72000." in text
    assert "| 2 | PRUNED | 0.65000 | 2 |" in text


def test_unknown_study_or_storage_is_a_clear_error(tmp_path, capsys):
    _study(tmp_path / "study.db")
    assert summary_script.main(["--storage", str(tmp_path / "study.db"), "--study-name", "other",
                                "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no study 'other'" in err and "studies there: s" in err
    assert summary_script.main(["--storage", str(tmp_path / "missing.db"), "--study-name", "s",
                                "--out", str(tmp_path / "x")]) == 2
    assert "missing.db" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_a_journal_storage_is_read_like_the_tune_command_writes_it(tmp_path):
    journal = tmp_path / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="j", storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={"x": 0.5}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)}, value=0.8))
    summary = summary_script.summarize(f"journal:{journal}", "j")
    assert summary.best_trial == 0 and summary.best_value == pytest.approx(0.8)
