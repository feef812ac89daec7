"""Smoke runs of the `adaptive-loop` command line on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from adaptive_loop.cli import main
from adaptive_loop.trace import load_trace
from conftest import TINY_OVERRIDES


def _set_args(overrides: list[str]) -> list[str]:
    args: list[str] = []
    for item in overrides:
        args += ["--set", item]
    return args


def test_train_evaluate_trace_and_oracle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--config", "tiny", "--run-dir", str(run), "--no-progress", *_set_args(TINY_OVERRIDES)]) == 0
    assert (run / "checkpoints" / "best.pt").is_file()
    assert (run / "config.yaml").is_file() and (run / "encoder.json").is_file()

    assert main(["evaluate", "--run", str(run), "--split", "test", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "AUC" in out and "FLOPs" in out and "dense" in out
    report = next(run.glob("**/*depth*.json"))
    rows = json.loads(report.read_text())
    csv = pd.read_csv(next(run.glob("**/*depth*.csv")))
    assert len(csv) >= 3  # depths 0..K with K = L + 2 for the tiny config (L=2)
    assert rows["dense_parameters"] > 0 and rows["embedding_parameters"] > 0
    assert [d["depth"] for d in rows["depths"]] == csv["depth"].tolist()

    trace_path = tmp_path / "valid.parquet"
    assert main(["trace", "--run", str(run), "--out", str(trace_path), "--max-depth", "4", "--no-progress"]) == 0
    trace = load_trace(trace_path)
    assert trace.logits.shape[1] == 5
    assert trace.meta.flops_loop > 0 and trace.meta.flops_entry > 0

    assert main(["oracle", "--trace", str(trace_path), "--out", str(tmp_path / "oracle")]) == 0
    assert "oracle" in capsys.readouterr().out.lower()


def test_demo_runs_end_to_end_on_a_small_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "demo"
    assert main(["demo", "--run-dir", str(run), "--rows", "3000", "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert str(run) in out
    assert any(run.glob("**/*.json")) and any(run.glob("**/*.csv")) and any(run.glob("**/*.png"))


def test_user_errors_are_one_line_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "tiny", "--set", "train.learning_rate=0.1", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.learning_rate" in err and "Traceback" not in err

    assert main(["evaluate", "--run", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err

    assert main(["train", "--config", "no_such_config"]) == 2
    assert "no_such_config" in capsys.readouterr().err


def test_command_line_start_up_leaves_analysis_libraries_unloaded() -> None:
    """Building every subcommand's parser must not import scikit-learn, scipy, LightGBM or matplotlib:
    `adaptive-loop train` would otherwise hold ~90 MB it never uses."""
    import subprocess
    import sys

    code = ("import sys, adaptive_loop.cli.app as app; app.build_parser(); "
            "print(sorted(m for m in ('sklearn', 'scipy', 'lightgbm', 'matplotlib', 'optuna') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
