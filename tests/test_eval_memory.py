"""Evaluation, tracing and scoring batches derived from a memory budget (train.eval_memory_mb).

The estimate must bound the tensors really alive during a forward pass, the batch must
shrink with longer sequences and a smaller budget, and no row's numbers may depend on the
batch size (validation, evaluate, traces, step-wise traces, scoring).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from adaptive_loop.config import TrainConfig
from adaptive_loop.data.batch import EncodedData
from adaptive_loop.errors import ConfigError
from adaptive_loop.model import build_model, tiny_config
from adaptive_loop.model.memory import MB, inference_bytes_per_row, rows_within_budget
from adaptive_loop.model.testing import random_batch, toy_spec
from adaptive_loop.trace import TraceMeta
from adaptive_loop.trace_builder import build_trace, trace_from_model
from adaptive_loop.training.per_depth import predict_depths
from tests._peak_memory import PeakTensorMemory

CASES = {
    "loopctr_history30": ("loopctr", dict(embed_dim=8, d_model=32, n_heads=4, tower_hidden=(64, 32), batch_norm=True),
                          dict(history=30, n_categorical=4, n_numeric=0, pooled=False)),
    "loopctr_tiny": ("loopctr", {}, {}),
    "no_hyper_connections": ("loopctr", dict(hyper_connections=False), {}),
    "dense_ffn_and_attention": ("loopctr", dict(moe=False, moe_attention=False), {}),
    "four_streams": ("loopctr", dict(hc_streams=4, d_model=32, n_heads=4), dict(history=20)),
    "compressed_sequence": ("loopctr", dict(seq_compress_queries=4), dict(history=30)),
    "no_history_wide_tower": ("loopctr", dict(tower_hidden=(200, 200)), dict(history=0)),
    "stackctr": ("stackctr", {}, {}),
    "dcnv2": ("dcnv2", {}, dict(history=20)),
    "deepfm": ("deepfm", {}, {}),
}


def _model(case: str):
    name, overrides, spec_kwargs = CASES[case]
    spec = toy_spec(**spec_kwargs)
    torch.manual_seed(0)
    return build_model(tiny_config(name, **overrides), spec).eval(), spec


def _encoded(spec, n: int, seed: int = 0) -> EncodedData:
    """A random batch as `EncodedData` (the form evaluation and traces read)."""
    batch = random_batch(spec, n, seed=seed)
    return EncodedData(
        cat=batch.cat.numpy(), num=batch.num.numpy(), seq={k: v.numpy() for k, v in batch.seq.items()},
        labels=batch.labels.numpy(), ids=np.arange(n, dtype=np.int64),
    )


@pytest.mark.parametrize("case", list(CASES))
def test_estimate_bounds_the_tensors_alive_in_a_forward_pass(case: str) -> None:
    model, spec = _model(case)
    depth = 3 if model.train_loops else 0
    rows = 96
    batch = random_batch(spec, rows)
    with torch.inference_mode(), PeakTensorMemory() as tracked:
        model(batch, depth=depth, return_hidden=True)
    measured = tracked.peak / rows
    estimate = inference_bytes_per_row(model, depth, hidden=True)
    assert measured > 0
    assert measured <= estimate, f"{case}: {measured:.0f} bytes/row alive, estimate {estimate:.0f}"
    if model.train_loops:  # token models: an estimate, not a blanket over-allowance
        assert estimate <= 2.5 * measured, f"{case}: estimate {estimate:.0f} is far above {measured:.0f}"


def test_rows_shrink_with_sequence_length_and_budget_and_respect_the_cap() -> None:
    short = build_model(tiny_config("loopctr"), toy_spec(history=5)).eval()
    long = build_model(tiny_config("loopctr"), toy_spec(history=60)).eval()
    assert rows_within_budget(long, 64) < rows_within_budget(short, 64)
    assert rows_within_budget(short, 16) < rows_within_budget(short, 64)
    assert rows_within_budget(short, 1e6, max_rows=500) == 500
    assert rows_within_budget(long, 1e-6) == 1
    per_row = inference_bytes_per_row(long)
    assert rows_within_budget(long, 64) == int(64 * MB // per_row)


def test_train_config_rejects_a_non_positive_budget() -> None:
    with pytest.raises(ConfigError, match="eval_memory_mb"):
        TrainConfig(eval_memory_mb=0)
    assert TrainConfig().eval_memory_mb > 0


@pytest.mark.parametrize("case", ["loopctr_history30", "no_history_wide_tower", "dcnv2"])
def test_budgeted_batches_give_the_same_logits_and_summaries(case: str) -> None:
    model, spec = _model(case)
    data = _encoded(spec, 300)
    depth = 2 if model.train_loops else 0
    whole, whole_h = predict_depths(model, data, depth, batch_size=300, hidden=True, memory_mb=None)
    small_budget = 37 * inference_bytes_per_row(model, depth, hidden=True) / MB  # 37 rows a batch
    assert rows_within_budget(model, small_budget, 8192, depth, hidden=True) == 37
    parts, parts_h = predict_depths(model, data, depth, hidden=True, memory_mb=small_budget)
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(parts_h, whole_h, rtol=1e-5, atol=1e-5)


def test_traces_in_budgeted_batches_match_whole_batch_traces() -> None:
    model, spec = _model("loopctr_history30")
    data = _encoded(spec, 200)
    budget = 23 * inference_bytes_per_row(model, 3, hidden=True) / MB
    full = build_trace(model, data, 3, dataset="toy", split="valid", model_config={}, batch_size=200, memory_mb=None)
    small = build_trace(model, data, 3, dataset="toy", split="valid", model_config={}, memory_mb=budget)
    np.testing.assert_allclose(small.logits, full.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small.hidden, full.hidden, rtol=1e-5, atol=1e-5)
    stepwise = trace_from_model(model, data, 3, full.meta, memory_mb=budget)
    np.testing.assert_allclose(stepwise.logits, full.logits, rtol=1e-5, atol=1e-5)
    assert isinstance(full.meta, TraceMeta)


def _run_with_budget(tiny_run: Path, target: Path, memory_mb: float) -> Path:
    """A copy of the tiny run whose config asks for `memory_mb` MB per evaluation batch."""
    shutil.copytree(tiny_run, target)
    config = yaml.safe_load((target / "config.yaml").read_text(encoding="utf-8"))
    config["train"]["eval_memory_mb"] = memory_mb
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


def test_evaluate_and_scoring_follow_the_run_budget(tiny_run: Path, tmp_path: Path) -> None:
    from adaptive_loop.engine.dataset import scoring_batch_rows
    from adaptive_loop.engine.scorer import AdaptiveScorer
    from adaptive_loop.runs import load_run, load_split
    from adaptive_loop.workflows import evaluate_run
    from controllers.fixed import FixedDepth

    reference = evaluate_run(tiny_run, "valid", out_dir=tmp_path / "ref")
    run = load_run(tiny_run)
    per_row = inference_bytes_per_row(run.model, run.config.trace_depth())
    small = _run_with_budget(tiny_run, tmp_path / "small", 50 * per_row / MB)  # ~50 rows a batch
    budgeted = evaluate_run(small, "valid", out_dir=tmp_path / "small_out")
    for a, b in zip(reference.rows, budgeted.rows):
        assert a.depth == b.depth
        assert a.auc == pytest.approx(b.auc, abs=1e-6) and a.logloss == pytest.approx(b.logloss, abs=1e-6)

    trace = build_trace(run.model, load_split(run, "valid").subset(slice(0, 64)), 2, dataset="tiny", split="valid",
                        model_config={}, hidden=False)
    controller = FixedDepth(depth=2).fit(trace)
    small_run = load_run(small)
    scorer = AdaptiveScorer(small_run.model, controller)
    assert 1 <= scoring_batch_rows(small_run, scorer) < 100
    assert scoring_batch_rows(small_run, scorer, batch_size=7) == 7
    assert scoring_batch_rows(small_run, scorer, memory_mb=1e4) == run.config.train.eval_batch_size
