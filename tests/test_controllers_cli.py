"""`adaptive-loop controllers list|evaluate` through their argparse registration."""

from __future__ import annotations

import argparse
import json

import pytest
from _trace_factory import make_trace

from adaptive_loop.cli import controllers_command as cli
from adaptive_loop.errors import BudgetError, ConfigError
from adaptive_loop.trace import save_trace


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptive-loop")
    cli.add_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("traces")
    test = save_trace(make_trace(3000, max_depth=4, seed=1, n_groups=150, split="test"), d / "test.parquet")
    valid = save_trace(make_trace(3000, max_depth=4, seed=2, n_groups=150, split="valid"), d / "valid.parquet")
    return test, valid


def test_list(capsys):
    args = _parser().parse_args(["controllers", "list"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "confidence" in out and "knob=delta" in out


def test_evaluate_writes_report_and_plot(traces, tmp_path, capsys):
    test, valid = traces
    out = tmp_path / "out"
    args = _parser().parse_args([
        "controllers", "evaluate", "--trace", str(test), "--calibration-trace", str(valid),
        "--controller", "stability", "--param", "criterion=kl", "--param", "patience=1",
        "--budget-depth", "2.5", "--out", str(out), "--bootstrap", "50", "--curve-points", "10",
    ])
    assert args.func(args) == 0
    report = json.loads((out / cli.REPORT_JSON).read_text())
    assert report["budget"] == pytest.approx(1000 + 2.5 * 200 + 50)
    assert report["calibration"]["mean_cost"] <= report["budget"] + 1e-9
    assert report["report"]["params"]["criterion"] == "kl"
    assert not report["calibrated_on_test_trace"]
    assert {"captured", "captured_mixture"} <= set(report["headroom_captured"])
    assert report["bootstrap_vs_mixture_frontier"]["n_resamples"] == 50
    assert (out / cli.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "headroom captured" in capsys.readouterr().out


def test_evaluate_with_budget_on_the_same_trace(traces, tmp_path):
    test, _ = traces
    args = _parser().parse_args([
        "controllers", "evaluate", "--trace", str(test), "--controller", "fixed", "--budget", "1500",
        "--out", str(tmp_path), "--bootstrap", "0", "--curve-points", "5",
    ])
    assert args.func(args) == 0
    report = json.loads((tmp_path / cli.REPORT_JSON).read_text())
    assert report["calibrated_on_test_trace"] and report["report"]["knob"] == 2
    assert report["bootstrap_vs_mixture_frontier"] is None


def test_evaluate_errors(traces, tmp_path):
    test, _ = traces
    bad_budget = _parser().parse_args([
        "controllers", "evaluate", "--trace", str(test), "--controller", "confidence", "--budget", "10",
        "--out", str(tmp_path),
    ])
    with pytest.raises(BudgetError, match="range"):
        bad_budget.func(bad_budget)
    bad_param = _parser().parse_args([
        "controllers", "evaluate", "--trace", str(test), "--controller", "confidence", "--param", "oops",
        "--out", str(tmp_path),
    ])
    with pytest.raises(ConfigError, match="key=value"):
        bad_param.func(bad_param)
    assert cli.parse_params(["a=1", "b=0.5", "c=true", "d=x"]) == {"a": 1, "b": 0.5, "c": True, "d": "x"}
