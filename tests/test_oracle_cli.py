"""`adaptive-loop oracle` end to end through its argparse registration."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest
from _trace_factory import make_trace

from adaptive_loop.cli import oracle_command as cli
from adaptive_loop.errors import TraceError
from adaptive_loop.trace import save_trace


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptive-loop")
    cli.add_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser


def test_oracle_cli_writes_labels_and_reports(tmp_path, capsys):
    trace = make_trace(2000, max_depth=4, seed=3, n_groups=100)
    path = save_trace(trace, tmp_path / "t.parquet")
    args = _parser().parse_args(["oracle", "--trace", str(path), "--out", str(tmp_path / "out"), "--cost-lambda", "0.02"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "best fixed" in printed and "oracle" in printed
    labels = pd.read_parquet(tmp_path / "out" / cli.LABELS_FILE)
    assert len(labels) == 2000
    assert {"id", "oracle_depth", "oracle_depth_cost_aware", "gain0_4", "gain_prev_4"} <= set(labels.columns)
    report = json.loads((tmp_path / "out" / cli.REPORT_JSON).read_text())
    assert report["headroom"]["gap_auc"] > 0
    assert report["needed_depth_agreement"]["n_samples"] == 2000
    assert len(report["budgeted_oracle"]["budgets"]) == 11
    assert "Budgeted oracle" in (tmp_path / "out" / cli.REPORT_MD).read_text()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_oracle_cli_missing_trace_names_the_file(tmp_path):
    args = _parser().parse_args(["oracle", "--trace", str(tmp_path / "nope.parquet"), "--out", str(tmp_path)])
    with pytest.raises(TraceError, match="nope.parquet"):
        args.func(args)
