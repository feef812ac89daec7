"""Streaming scoring: many small batches == one batch, atomic outputs, parquet == CSV, binned AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from adaptive_loop.data.datasets.synthetic import generate_synthetic, synthetic_schema
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.streaming import iter_encoded_batches
from adaptive_loop.engine import AdaptiveScorer, StreamingAUC, score_stream
from adaptive_loop.metrics import auc
from adaptive_loop.model import build_model, tiny_config
from adaptive_loop.trace_builder import build_trace
from controllers.registry import make_controller

SEQ_LEN = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    frame = generate_synthetic(n_rows=1600, seed=0, seq_len=SEQ_LEN, n_users=60, n_items=40)
    encoder = FeatureEncoder(synthetic_schema(SEQ_LEN)).fit(frame.iloc[:1000])
    torch.manual_seed(0)
    model = build_model(tiny_config(), encoder.feature_spec()).eval()
    valid = encoder.transform(frame.iloc[:1000])
    trace = build_trace(model, valid, 3, dataset="synthetic", split="valid", model_config={},
                        categorical_names=[f.name for f in encoder.schema.categorical])
    controller = make_controller("stability", criterion="delta_logit").fit(trace)
    controller.calibrate(trace, float(np.mean(controller.cost_range(trace))))
    scoring = frame.iloc[1000:].drop(columns=["needed_depth", "true_prob"]).reset_index(drop=True)
    scoring.loc[:9, "user"] = 10_000  # unseen users go to the OOV id
    folder = tmp_path_factory.mktemp("engine_stream")
    path = folder / "rows.parquet"
    scoring.to_parquet(path, row_group_size=130)
    return AdaptiveScorer(model, controller), encoder, path, folder


def _score(world, batch_size: int, out: Path):
    scorer, encoder, path, _ = world
    chunks = iter_encoded_batches(path, encoder, batch_size, chunk_rows=97)
    return score_stream(scorer, chunks, out, total_rows=600)


def test_many_small_batches_equal_one_batch(world) -> None:
    folder = world[3]
    small = _score(world, 64, folder / "small.parquet")
    whole = _score(world, 10_000, folder / "whole.parquet")
    assert (small.n_batches, whole.n_batches) == (10, 1) and small.n_rows == whole.n_rows == 600
    a, b = pd.read_parquet(folder / "small.parquet"), pd.read_parquet(folder / "whole.parquet")
    assert list(a.columns) == ["id", "label", "prob", "logit", "depth", "exits", "controller_flops", "flops"]
    np.testing.assert_array_equal(a["id"], np.arange(600))
    np.testing.assert_array_equal(a["depth"], b["depth"])
    assert a["depth"].nunique() >= 2
    np.testing.assert_allclose(a["prob"], b["prob"], atol=1e-6)
    np.testing.assert_allclose(a["flops"], b["flops"], rtol=1e-12)
    assert small.depth_histogram == whole.depth_histogram
    assert small.mean_flops == pytest.approx(float(a["flops"].mean()))
    assert small.auc == pytest.approx(auc(a["label"].to_numpy(), a["logit"].to_numpy()), abs=1e-4)


def test_csv_output_equals_parquet_output(world) -> None:
    folder = world[3]
    _score(world, 200, folder / "out.parquet")
    _score(world, 200, folder / "out.csv")
    a, b = pd.read_parquet(folder / "out.parquet"), pd.read_csv(folder / "out.csv")
    assert list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a["depth"], b["depth"])
    np.testing.assert_allclose(a["prob"], b["prob"], rtol=1e-7)


def test_a_failing_run_leaves_the_previous_output_untouched(world) -> None:
    scorer, encoder, path, folder = world
    out = folder / "kept.csv"
    out.write_text("previous\n")

    def broken():
        yield from iter_encoded_batches(path, encoder, 100)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        score_stream(scorer, broken(), out)
    assert out.read_text() == "previous\n"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".kept")] == []


def test_unlabelled_input_has_no_label_column_and_no_auc(world, tmp_path: Path) -> None:
    scorer, encoder, path, _ = world
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(path).drop(["label"]), tmp_path / "nolabel.parquet")
    summary = score_stream(scorer, iter_encoded_batches(tmp_path / "nolabel.parquet", encoder, 256), tmp_path / "s.parquet")
    assert "label" not in pd.read_parquet(tmp_path / "s.parquet").columns
    assert summary.auc is None and summary.n_rows == 600


def test_streaming_auc_matches_exact_auc() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(20_000) < 0.3).astype(np.float32)
    logits = rng.normal(0, 2, 20_000) + labels
    meter = StreamingAUC()
    for part in np.array_split(np.arange(20_000), 7):
        meter.update(labels[part], logits[part])
    assert meter.value() == pytest.approx(auc(labels, logits), abs=1e-5)
    assert StreamingAUC().value() is None
