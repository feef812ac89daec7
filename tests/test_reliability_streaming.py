"""Streaming parquet data: same encoding as in memory, sharding by rank and worker, streamed training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adaptive_loop.config import load_config
from adaptive_loop.data.batch import concat_encoded
from adaptive_loop.data.datasets.synthetic import generate_synthetic, synthetic_schema
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.data.readers import list_parquet_files, scan_row_groups
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.data.streaming import ParquetSplit, StreamingData, iter_encoded_batches
from adaptive_loop.errors import DataError
from adaptive_loop.training import train
from adaptive_loop.workflows import evaluate_run

SEQ_LEN = 10


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """3000 synthetic rows in two files of 500-row row groups (6 row groups)."""
    folder = tmp_path_factory.mktemp("parquet")
    frame = generate_synthetic(n_rows=3000, seed=1, seq_len=SEQ_LEN, n_users=150, n_items=80)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.slice(0, 1500), folder / "part-0.parquet", row_group_size=500)
    pq.write_table(table.slice(1500), folder / "part-1.parquet", row_group_size=500)
    return folder, frame


def test_streamed_encoding_equals_the_in_memory_one(parquet_folder) -> None:
    folder, frame = parquet_folder
    schema = synthetic_schema(SEQ_LEN)
    encoder = FeatureEncoder(schema).fit(frame)
    batches = list(iter_encoded_batches(folder, encoder, batch_size=256, extras=("needed_depth",), chunk_rows=200))
    assert [len(b) for b in batches] == [256] * 11 + [184]
    got, want = concat_encoded(batches), encoder.transform(frame, extras=("needed_depth",))
    for name in ("cat", "num", "labels", "ids", "groups"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    np.testing.assert_array_equal(got.seq["hist_items"], want.seq["hist_items"])
    np.testing.assert_array_equal(got.extras["needed_depth"], want.extras["needed_depth"])


def test_rank_shards_are_disjoint_and_in_file_order(parquet_folder) -> None:
    folder, frame = parquet_folder
    encoder = FeatureEncoder(synthetic_schema(SEQ_LEN)).fit(frame)
    ids = [concat_encoded(list(iter_encoded_batches(folder, encoder, 300, rank=r, world_size=2))).ids for r in range(2)]
    assert len(ids[0]) == len(ids[1]) == 1500  # 3 row groups each
    np.testing.assert_array_equal(np.concatenate(ids), np.arange(3000))


def test_dataloader_workers_read_every_row_once(parquet_folder) -> None:
    folder, frame = parquet_folder
    encoder = FeatureEncoder(synthetic_schema(SEQ_LEN)).fit(frame)
    batches = list(iter_encoded_batches(folder, encoder, 400, workers=2))
    np.testing.assert_array_equal(np.sort(np.concatenate([b.ids for b in batches])), np.arange(3000))


def test_chunked_fit_equals_whole_fit() -> None:
    rng = np.random.default_rng(0)
    price = rng.normal(50, 10, 1000)
    price[rng.random(1000) < 0.1] = np.nan
    frame = pd.DataFrame({"y": rng.integers(0, 2, 1000), "user": rng.integers(0, 40, 1000).astype(str),
                          "price": price, "hist": ["|".join(map(str, rng.integers(0, 9, 3))) for _ in range(1000)]})
    schema = DatasetSchema.from_dict({"label": "y", "categorical": ["user"], "numeric": ["price"], "group": "user",
                                      "sequences": [{"name": "hist", "max_len": 4}]})
    whole = FeatureEncoder(schema).fit(frame)
    chunked = FeatureEncoder(schema).fit_chunks(frame.iloc[i : i + 137] for i in range(0, 1000, 137))
    assert chunked.vocabularies == whole.vocabularies and chunked.group_values == whole.group_values
    a, b = chunked.numeric_stats["price"], whole.numeric_stats["price"]
    assert a.flag == b.flag is True
    assert a.mean == pytest.approx(b.mean, rel=1e-12) and a.std == pytest.approx(b.std, rel=1e-12)


def test_epoch_plans_cover_the_split_and_agree_across_ranks(parquet_folder) -> None:
    folder, frame = parquet_folder
    encoder = FeatureEncoder(synthetic_schema(SEQ_LEN)).fit(frame)
    split = ParquetSplit("train", scan_row_groups(list_parquet_files(folder)), encoder, chunk_rows=200,
                         shuffle_rows=700, seed=5)
    one = [b.ids for b in split.epoch_plan(0, batch_size=256)]
    np.testing.assert_array_equal(np.sort(np.concatenate(one)), np.arange(3000))  # every row once
    assert [b.ids.tolist() for b in split.epoch_plan(0, 256)] == [x.tolist() for x in one]  # seeded
    assert not np.array_equal(np.concatenate([b.ids for b in split.epoch_plan(1, 256)]), np.concatenate(one))
    plans = [split.epoch_plan(0, 256, rank=r, world_size=2) for r in range(2)]
    assert len(plans[0]) == len(plans[1]) > 0  # same number of steps on every rank
    seen = [np.concatenate([b.ids for b in plan]) for plan in plans]
    assert [len(list(plan)) for plan in plans] == [len(plans[0])] * 2
    assert not set(seen[0]) & set(seen[1])
    assert all(len(b) == 128 for b in list(plans[0])[:-1])  # each rank holds half of the global batch


def test_unseen_groups_get_the_same_code_in_every_chunk(parquet_folder) -> None:
    folder, frame = parquet_folder
    encoder = FeatureEncoder(synthetic_schema(SEQ_LEN)).fit(frame[frame["user"] < 100])
    batches = list(iter_encoded_batches(folder, encoder, 250, chunk_rows=100))
    users = frame["user"].to_numpy()
    codes = np.concatenate([b.groups for b in batches])
    pairs = set(zip(users.tolist(), codes.tolist()))
    assert len(pairs) == len(set(users.tolist()))  # one code per user, across chunks


def test_training_streams_a_parquet_folder_and_evaluates(parquet_folder, tmp_path, tiny_config_path) -> None:
    folder, _ = parquet_folder
    config = load_config(tiny_config_path, ["data.dataset=parquet", f"data.path={folder}", "data.options={extra_columns: [needed_depth]}",
                                            "data.stream_chunk_rows=250", "train.epochs=1", "train.num_threads=1"])
    config.data.schema = synthetic_schema(SEQ_LEN).to_dict()
    data = prepare_data(config.data, seed=config.seed)
    assert isinstance(data, StreamingData)  # a folder streams automatically
    assert len(data.train) + len(data.valid) + len(data.test) == 3000
    result = train(config, tmp_path / "run", data=data)
    assert result.history[0].steps == -(-len(data.train) // config.train.batch_size)
    report = evaluate_run(tmp_path / "run", split="valid")
    assert len(report.rows) == config.trace_depth() + 1 and 0.0 < report.rows[0].auc < 1.0


def test_streaming_errors_name_the_path(tmp_path) -> None:
    encoder = FeatureEncoder(synthetic_schema(SEQ_LEN)).fit(generate_synthetic(n_rows=50, seq_len=SEQ_LEN))
    with pytest.raises(DataError, match="does not exist"):
        list(iter_encoded_batches(tmp_path / "nowhere", encoder, 10))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .parquet files"):
        list(iter_encoded_batches(tmp_path / "empty", encoder, 10))
    pd.DataFrame({"user": [1]}).to_parquet(tmp_path / "narrow.parquet")
    with pytest.raises(DataError, match=r"narrow.parquet: missing column\(s\) 'item'"):
        list(iter_encoded_batches(tmp_path / "narrow.parquet", encoder, 10))
