"""The depth trace file contract and the cost model."""

import numpy as np
import pytest

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import TraceError
from adaptive_loop.trace import DepthTrace, TraceMeta, load_trace, save_trace


def make_trace(n: int = 50, k: int = 3, hidden: bool = True) -> DepthTrace:
    rng = np.random.default_rng(0)
    meta = TraceMeta(flops_entry=100.0, flops_loop=40.0, flops_exit=10.0, max_depth=k, train_loops=3, hidden_dim=4,
                     dataset="unit", split="valid", model_config={"name": "loopctr", "d_model": 8})
    return DepthTrace(
        ids=np.arange(n), labels=rng.integers(0, 2, n), logits=rng.normal(size=(n, k + 1)), meta=meta,
        groups=rng.integers(0, 5, n), hidden=rng.normal(size=(n, k + 1, 4)) if hidden else None,
        features={"needed_depth": rng.integers(0, 4, n)},
    )


def test_round_trip_keeps_every_column(tmp_path) -> None:
    trace = make_trace()
    path = save_trace(trace, tmp_path / "t.parquet")
    back = load_trace(path)
    np.testing.assert_array_equal(back.ids, trace.ids)
    np.testing.assert_array_equal(back.labels, trace.labels)
    np.testing.assert_allclose(back.logits, trace.logits)
    np.testing.assert_allclose(back.hidden, trace.hidden)
    np.testing.assert_array_equal(back.groups, trace.groups)
    np.testing.assert_array_equal(back.features["needed_depth"], trace.features["needed_depth"])
    assert back.meta == trace.meta


def test_trace_without_hidden(tmp_path) -> None:
    back = load_trace(save_trace(make_trace(hidden=False), tmp_path / "t.parquet"))
    assert back.hidden is None


def test_depth_count_must_match_metadata() -> None:
    trace = make_trace()
    with pytest.raises(TraceError, match="K=3"):
        DepthTrace(ids=trace.ids, labels=trace.labels, logits=trace.logits[:, :2], meta=trace.meta)


def test_corrupted_and_foreign_files_are_refused(tmp_path) -> None:
    path = save_trace(make_trace(), tmp_path / "t.parquet")
    data = path.read_bytes()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="broken.parquet"):
        load_trace(broken)
    import pandas as pd

    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"id": [1], "label": [0]}).to_parquet(foreign)
    with pytest.raises(TraceError, match="metadata"):
        load_trace(foreign)
    with pytest.raises(TraceError, match="does not exist"):
        load_trace(tmp_path / "missing.parquet")


def test_labels_must_be_binary() -> None:
    trace = make_trace()
    with pytest.raises(TraceError, match="labels"):
        DepthTrace(ids=trace.ids, labels=trace.labels * 2 + 1, logits=trace.logits, meta=trace.meta)


def test_cost_model_counts_every_exit_and_controller_flop() -> None:
    cost = CostModel.from_meta(make_trace().meta)
    assert cost.fixed_depth(2) == 100 + 2 * 40 + 10
    np.testing.assert_allclose(cost.incremental(np.array([0, 2]), controller_flops_per_step=3),
                               [100 + 10 + 3, 100 + 80 + 30 + 9])
    np.testing.assert_allclose(cost.cost(1, 2, 7.0), 100 + 40 + 20 + 7)


def test_subset_and_truncate() -> None:
    trace = make_trace()
    part = trace.subset(np.array([3, 1]))
    np.testing.assert_array_equal(part.ids, [3, 1])
    short = trace.truncate_depth(1)
    assert short.n_depths == 2 and short.meta.max_depth == 1 and short.hidden.shape[1] == 2
