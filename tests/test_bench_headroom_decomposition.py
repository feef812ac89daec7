"""`benchmarks/headroom_decomposition.py` end to end on small constructed traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bench_scripts import load_benchmark
from _headroom_factory import planted

from adaptive_loop.errors import ConfigError
from adaptive_loop.harness.decomposition_report import read_excess
from adaptive_loop.trace import save_trace


def _write(tmp_path: Path, name: str, seed: int, n_depths: int) -> dict[str, str]:
    valid, _ = planted(700, n_depths, seed=seed)
    test, seeds = planted(700, n_depths, seed=seed + 100, n_seeds=3)
    valid.meta = test.meta = seeds[0].meta  # one model: same FLOPs and config
    folder = tmp_path / name
    files = {"valid": str(save_trace(valid, folder / "valid.parquet")), "test": str(save_trace(test, folder / "test.parquet"))}
    files["seeds"] = ",".join(str(save_trace(s, folder / f"seed{k}.parquet")) for k, s in enumerate(seeds[:2]))
    files["mc"] = str(folder / "mc")
    for k, s in enumerate(seeds):
        save_trace(s, folder / "mc" / f"pass_{k:02d}.parquet")
    return files


def test_benchmark_writes_the_issue_json_shape(tmp_path):
    bench = load_benchmark("headroom_decomposition")
    a = _write(tmp_path, "a", 1, 4)
    b = _write(tmp_path, "b", 2, 4)
    out = tmp_path / "results"
    argv = [
        "--dataset", f"toy={a['valid']},{a['test']}", "--seed-traces", f"toy={a['seeds']}",
        "--mc-dropout-traces", f"toy={a['mc']}",
        "--claim3", f"toy_L1={b['valid']},{b['test']}",
        "--controller", "confidence:criterion=margin", "--budget-depth", "1",
        "--bootstrap", "30", "--repeats", "2", "--folds", "2", "--budget-points", "3", "--out", str(out), "--no-progress",
    ]
    assert bench.main(argv) == 0
    record = json.loads((out / "headroom_decomposition.json").read_text())["toy"]
    assert set(record["null_headroom"]) == {"seeds", "mc_dropout", "parametric"}
    assert all(isinstance(v, float) for v in record["null_headroom"].values())
    assert len(record["excess_ci"]) == 2 and record["excess_null"] in ("seeds", "mc-dropout")
    assert len(record["sources"]["seed_traces"]) == 3  # the test trace's own model is one of the seeds
    best = record["best_controller"]
    assert {"name", "captured_of_oracle", "captured_of_excess", "ci_low"} <= set(best)
    assert best["name"].startswith("confidence")
    md = (out / "headroom_decomposition.md").read_text()
    assert md.splitlines()[0].startswith("# ") and "python benchmarks/headroom_decomposition.py --dataset toy=" in md
    assert (out / "headroom_decomposition.png").stat().st_size > 10_000
    claim3 = json.loads((out / "headroom_decomposition_claim3.json").read_text())
    assert claim3["toy_L1"]["train_loops"] == 3 and claim3["toy_L1"]["best_controller"] is None
    assert "trained loops L" in (out / "headroom_decomposition_claim3.md").read_text()
    # the controller benchmarks read the headline excess back (--excess-from)
    assert read_excess(out / "headroom_decomposition.json") == {"toy": record["excess"]}


def test_read_excess_names_the_file_it_cannot_use(tmp_path):
    with pytest.raises(ConfigError, match="missing.json: no such headroom decomposition"):
        read_excess(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"list.json: expected \{dataset: record\}"):
        read_excess(tmp_path / "list.json")
    (tmp_path / "partial.json").write_text('{"a": {"excess": 0.002}, "b": {"excess": null}}')
    assert read_excess(tmp_path / "partial.json") == {"a": 0.002}


def test_benchmark_bad_dataset_entry_is_one_error_line(tmp_path, capsys):
    bench = load_benchmark("headroom_decomposition")
    assert bench.main(["--dataset", "toy=only_one.parquet", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dataset toy") and "Traceback" not in err


def test_benchmark_builds_traces_from_a_run_directory(tiny_run, tmp_path):
    bench = load_benchmark("headroom_decomposition")
    argv = [
        "--dataset", f"tiny={tiny_run}", "--mc-dropout-p", "tiny=0.3", "--mc-passes", "2", "--max-depth", "1",
        "--controller", "confidence:criterion=margin", "--budget-depth", "1", "--bootstrap", "20", "--repeats", "2",
        "--folds", "2", "--budget-points", "3", "--predictability-no-hidden", "--out", str(tmp_path), "--no-progress",
    ]
    assert bench.main(argv) == 0
    record = json.loads((tmp_path / "headroom_decomposition.json").read_text())["tiny"]
    assert record["null_headroom"]["mc_dropout"] is not None and record["null_headroom"]["seeds"] is None
    assert record["n_depths"] == 2 and record["sources"]["test"].endswith("trace_test_k1.parquet")
    assert len(record["sources"]["mc_dropout_traces"]) == 2
    assert (tiny_run / "null_traces" / "mc_dropout_test_k1" / "manifest.json").is_file()


def test_seed_runs_stay_run_directories_when_they_hold_traces(tmp_path):
    """A finished seed run holds trace_*.parquet files; --seed-runs must pass the directory, not those files."""
    bench = load_benchmark("headroom_decomposition")
    run = tmp_path / "seed2021"
    run.mkdir()
    (run / "trace_test.parquet").write_bytes(b"")
    (run / "trace_valid.parquet").write_bytes(b"")
    traces = tmp_path / "mc"
    traces.mkdir()
    (traces / "pass_00.parquet").write_bytes(b"")
    (tmp_path / "main").mkdir()
    args = bench.build_parser().parse_args([
        "--dataset", f"toy={tmp_path / 'main'}", "--seed-runs", f"toy={run}", "--mc-dropout-traces", f"toy={traces}",
    ])
    (entry,) = bench.dataset_inputs(args)
    assert entry.seed_runs == [run]
    assert entry.mc_traces == [traces / "pass_00.parquet"]  # a folder of traces still stands for its files
