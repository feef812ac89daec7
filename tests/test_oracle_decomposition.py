"""`decompose_headroom`, its files and the `adaptive-loop oracle` decomposition options."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from _headroom_factory import planted

from adaptive_loop.errors import ConfigError, TraceError
from adaptive_loop.trace import DepthTrace, TraceMeta, save_trace
from adaptive_loop.cli import oracle_command as cli
from adaptive_loop.harness.decomposition import decompose_headroom
from adaptive_loop.harness.decomposition_report import write_decomposition

ISSUE_KEYS = {"oracle_headroom", "null_headroom", "excess", "excess_ci", "predictable_share"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptive-loop")
    cli.add_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser


def test_decomposition_of_a_planted_trace(tmp_path):
    trace, seeds = planted(1200, 5, seed=1)
    result = decompose_headroom(trace, seed_traces=seeds[:3], mc_traces=seeds[3:], repeats=3, n_bootstrap=100,
                                predictability=True, folds=2, predictability_options={"n_estimators": 40},
                                budget_points=5)
    summary = result.summary()
    assert ISSUE_KEYS <= set(summary)
    assert set(summary["null_headroom"]) == {"seeds", "mc_dropout", "parametric"}
    assert summary["excess_null"] in ("seeds", "mc-dropout")  # measured noise is the headline, not the parametric null
    headline = result.comparison(summary["excess_null"])
    assert summary["excess"] == min(c.excess.estimate for c in result.comparisons if c.null != "parametric")
    assert headline.excess.low > 0
    assert result.comparison("seeds").n_candidates == 3 and result.comparison("mc-dropout").n_candidates == 2
    assert summary["oracle_headroom"] == pytest.approx(result.table.gap)
    assert result.oracle_interval.low <= result.oracle_headroom <= result.oracle_interval.high
    assert result.predictability is not None and np.isfinite(summary["predictable_share"])
    assert result.null_curve is not None and len(result.null_curve.budgets) == 5

    paths = write_decomposition(result, tmp_path / "out", extra={"trace": "planted"})
    payload = json.loads(paths["json"].read_text())
    assert ISSUE_KEYS <= set(payload) and payload["trace"] == "planted" and len(payload["nulls"]) == 3
    assert "(headline)" in paths["markdown"].read_text()
    assert paths["figure"].stat().st_size > 10_000
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_seed_traces_of_another_model_are_refused():
    trace, seeds = planted(300, 4, seed=2)
    meta = TraceMeta(flops_entry=9.0, flops_loop=9.0, flops_exit=9.0, max_depth=3, train_loops=3)
    other = DepthTrace(ids=seeds[0].ids, labels=seeds[0].labels, logits=seeds[0].logits, meta=meta)
    with pytest.raises(TraceError, match="seeds trace 0.*different models"):
        decompose_headroom(trace, parametric=False, seed_traces=[other], n_bootstrap=0, budget_points=0)
    with pytest.raises(ConfigError, match="null depth"):
        decompose_headroom(trace, null_depth=7, n_bootstrap=0, budget_points=0)


def test_oracle_cli_writes_the_decomposition(tmp_path, capsys):
    trace, seeds = planted(800, 4, seed=3)
    path = save_trace(trace, tmp_path / "t.parquet")
    seed_paths = [str(save_trace(s, tmp_path / f"s{k}.parquet")) for k, s in enumerate(seeds)]
    out = tmp_path / "out"
    args = _parser().parse_args([
        "oracle", "--trace", str(path), "--out", str(out), "--null", "parametric", "--seed-traces", *seed_paths,
        "--bootstrap", "50", "--null-repeats", "2", "--predictability", "--folds", "2", "--budget-points", "3",
    ])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "Headroom decomposition" in printed and "headroom_decomposition.png" in printed
    payload = json.loads((out / "headroom_decomposition.json").read_text())
    assert payload["null_headroom"]["seeds"] is not None and payload["null_headroom"]["parametric"] is not None
    assert payload["null_headroom"]["mc_dropout"] is None and payload["excess_null"] == "seeds"
    assert (out / "headroom_decomposition.png").is_file() and (out / cli.REPORT_JSON).is_file()


def test_oracle_cli_decomposition_errors(tmp_path):
    trace, seeds = planted(300, 4, seed=4)
    path = save_trace(trace, tmp_path / "t.parquet")
    args = _parser().parse_args(["oracle", "--trace", str(path), "--out", str(tmp_path / "o"), "--null", "seeds"])
    with pytest.raises(ConfigError, match="--seed-traces"):
        args.func(args)
    other = save_trace(seeds[0].subset(np.arange(200)), tmp_path / "short.parquet")
    args = _parser().parse_args(["oracle", "--trace", str(path), "--out", str(tmp_path / "o"),
                                 "--seed-traces", str(other), "--bootstrap", "0"])
    with pytest.raises(TraceError, match="short.parquet"):
        args.func(args)
    assert not (tmp_path / "o" / "headroom_decomposition.json").exists()
