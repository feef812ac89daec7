"""The pieces of `benchmarks/bench_throughput.py` on tiny inputs (the whole --quick run takes about 90 seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from _bench_scripts import load_benchmark

from adaptive_loop.config import load_config
from adaptive_loop.data.pipeline import prepare_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_throughput")


@pytest.fixture(scope="module")
def tiny(tiny_config_path):
    config = load_config(tiny_config_path, ["data.options.n_rows=1500"])
    return config, prepare_data(config.data, seed=config.seed, show_progress=False)


def test_training_flops_count_every_trained_depth_three_times(bench, tiny) -> None:
    config, data = tiny
    from adaptive_loop.model import build_model

    flops = build_model(config.model, data.spec).flops()
    L = config.model.train_loops
    forward, train = bench.training_flops(config, data)
    assert forward == flops.entry + L * flops.loop + (L + 1) * flops.exit
    assert train == 3 * forward


def test_scoring_reports_loopctr_and_dcnv2_gflops(bench, tiny) -> None:
    config, data = tiny
    plan = bench.Plan(matmul_repeats=1, train_steps=1, train_warmup=1, score_repeats=1, csv_rows=0, csv_max_steps=0)
    out = bench.measure_scoring(config, data, plan)
    assert out["batch_size"] == min(bench.SCORE_BATCH, len(data.valid))
    for name in ("loopctr", "dcnv2"):
        row = out[name]
        assert row["gflops"] == pytest.approx(row["rows_per_s"] * row["flops_per_row"] / 1e9)
    assert out["loopctr"]["flops_per_row"] > out["dcnv2"]["flops_per_row"]
    assert out["gflops_ratio_loopctr_to_dcnv2"] == pytest.approx(out["loopctr"]["gflops"] / out["dcnv2"]["gflops"])


def test_generated_csv_and_its_run_config(bench, tmp_path: Path) -> None:
    csv = tmp_path / "clicks.csv"
    bench.write_csv(csv, 600)
    frame = pd.read_csv(csv, keep_default_na=False)
    assert list(frame.columns) == ["user", "item", "category", "hour", "hist", "label"]
    assert len(frame) == 600 and set(frame["label"]) == {0, 1}
    lengths = frame["hist"].map(lambda s: len(s.split("|")) if s else 0)
    assert lengths.max() == 30 and lengths.min() == 0
    plan = bench.Plan(matmul_repeats=1, train_steps=1, train_warmup=1, score_repeats=1, csv_rows=600, csv_max_steps=3)
    raw = bench.csv_run_config(csv, 1, plan)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = load_config(path)
    reference = load_config(ROOT / "adaptive_loop" / "configs" / "movielens_100k.yaml")
    assert config.model == reference.model  # the movielens_100k model sizes
    assert config.train.max_steps_per_epoch == 3 and config.train.epochs == 1
    data = prepare_data(config.data, seed=config.seed, show_progress=False)
    assert [f.name for f in data.spec.categorical] == ["user", "item", "category", "hour"]
    assert [s.max_len for s in data.spec.token_sequences] == [30]
    assert len(data.train) == pytest.approx(360, abs=2)


def test_peak_rss_of_a_subprocess(bench, tmp_path) -> None:
    big = bench.peak_rss([sys.executable, "-c", "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096])"], tmp_path)
    small = bench.peak_rss([sys.executable, "-c", "pass", str(tmp_path / "run")], tmp_path)
    assert big["peak_rss_mb"] > 300 > small["peak_rss_mb"]
    assert small["command"] == ["python", "-c", "pass", "<tmp>/run"]  # no machine paths in the result file
    with pytest.raises(RuntimeError, match="exited with 3"):
        bench.peak_rss([sys.executable, "-c", "raise SystemExit(3)"], tmp_path)


def test_matmul_reference_is_timed_with_the_current_threads(bench) -> None:
    torch.set_num_threads(1)
    rate = bench.matmul_rate(128, 128, 128, repeats=3)
    assert rate.gflops > 0 and rate.shape == (128, 128, 128)


def test_csv_memory_measures_whole_batches_evaluation_and_a_training_within_budget(bench) -> None:
    plan = bench.Plan(matmul_repeats=1, train_steps=1, train_warmup=1, score_repeats=1, csv_rows=800, csv_max_steps=2)
    memory = bench.measure_csv_memory(1, plan, train_memory_mb=1.0)
    for key in ("train", "evaluate", "train_within_budget"):
        assert memory[key]["peak_rss_mb"] > 100 and memory[key]["seconds"] > 0
    assert memory["train_within_budget"]["train_memory_mb"] == 1.0
    assert "train.train_memory_mb=1.0" in memory["train_within_budget"]["command"]
