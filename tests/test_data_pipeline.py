"""prepare_data: config -> encoded splits + spec, for the synthetic default and for user files."""

import numpy as np
import pandas as pd
import pytest
import yaml

from adaptive_loop.data.datasets import available_datasets, load_raw_dataset
from adaptive_loop.data.pipeline import DataConfig, encode_for_scoring, prepare_data
from adaptive_loop.errors import ConfigError, DataError


def test_synthetic_default_is_encoded_with_extras() -> None:
    data = prepare_data(DataConfig(options={"n_rows": 4_000}), seed=5)
    assert (len(data.train), len(data.valid), len(data.test)) == (3_200, 400, 400)
    assert data.spec.extras["dataset"] == "synthetic"
    assert data.train.cat.shape == (3_200, len(data.spec.categorical))
    assert set(data.train.extras) == {"needed_depth", "true_prob", "seq_len"}
    assert set(np.unique(data.train.extras["needed_depth"])) == {0, 1, 2, 3}
    assert (data.train.extras["seq_len"] == (data.train.seq["hist_items"] != 0).sum(axis=1)).all()
    batch = data.valid.to_batch(slice(0, 8))
    assert batch.seq["hist_items"].shape == (8, 10)
    again = prepare_data(DataConfig(options={"n_rows": 4_000}), seed=5)
    np.testing.assert_array_equal(again.test.cat, data.test.cat)


def test_registry_and_unknown_names() -> None:
    assert {"synthetic", "frappe_x1", "movielens_100k", "open_bandit", "csv", "parquet"} <= set(available_datasets())
    with pytest.raises(ConfigError, match="did you mean 'frappe_x1'"):
        load_raw_dataset("frape_x1")
    with pytest.raises(ConfigError, match="only used with dataset csv or parquet"):
        prepare_data(DataConfig(path="x.csv"), seed=0)


def _user_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "clicked": rng.choice([-1, 1], n),
            "uid": rng.integers(0, 20, n),
            "ad": rng.integers(0, 30, n),
            "bid": rng.normal(size=n),
            "seen": [",".join(map(str, rng.integers(0, 30, k))) for k in rng.integers(0, 6, n)],
            "ts": np.arange(n),
        }
    )


SCHEMA = {
    "label": "clicked",
    "group": "uid",
    "categorical": ["uid", "ad"],
    "numeric": ["bid"],
    "sequences": [{"name": "seen", "max_len": 4, "delimiter": ",", "vocab_from": "ad"}],
}


def test_csv_with_one_file_split_by_time(tmp_path) -> None:
    _user_frame().to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(SCHEMA))
    config = DataConfig(dataset="csv", path=str(tmp_path / "log.csv"), schema=str(tmp_path / "schema.yaml"),
                        options={"split": "time", "time_column": "ts", "extra_columns": ["ts"]})
    data = prepare_data(config, seed=0)
    assert len(data.train) + len(data.valid) + len(data.test) == 300
    assert data.train.extras["ts"].max() < data.valid.extras["ts"].min()
    assert set(np.unique(data.train.labels)) == {0.0, 1.0}
    assert data.spec.sequences[0].table == "ad"


def test_parquet_with_separate_files_and_scoring(tmp_path) -> None:
    frame = _user_frame()
    for name, part in (("train", frame[:200]), ("valid", frame[200:250]), ("test", frame[250:])):
        part.to_parquet(tmp_path / f"{name}.parquet")
    config = DataConfig(dataset="parquet", schema=SCHEMA, train_path=str(tmp_path / "train.parquet"),
                        valid_path=str(tmp_path / "valid.parquet"), test_path=str(tmp_path / "test.parquet"))
    data = prepare_data(config, seed=0)
    assert (len(data.train), len(data.valid), len(data.test)) == (200, 50, 50)
    scored = encode_for_scoring(data.encoder, frame[250:].drop(columns="clicked"))
    np.testing.assert_array_equal(scored.cat, data.test.cat)
    assert np.isnan(scored.labels).all()
    with pytest.raises(DataError, match="does not exist"):
        prepare_data(DataConfig(dataset="parquet", schema=SCHEMA, path=str(tmp_path / "none.parquet")), seed=0)
    with pytest.raises(ConfigError, match="needs a schema"):
        prepare_data(DataConfig(dataset="csv", path=str(tmp_path / "train.parquet")), seed=0)


def test_run_config_accepts_the_data_section() -> None:
    from adaptive_loop.config import load_config

    config = load_config(None, ["data.options.n_rows=1000", "data.min_count=2"])
    assert config.data.options == {"n_rows": 1000} and config.data.min_count == 2
    with pytest.raises(ConfigError, match="did you mean 'min_count'"):
        load_config(None, ["data.min_cnt=2"])


def test_encoded_arrays_are_writable() -> None:
    data = prepare_data(DataConfig(options={"n_rows": 1_000}), seed=0)
    split = data.train
    arrays = [split.cat, split.num, split.labels, split.ids, split.groups, *split.seq.values(), *split.extras.values()]
    assert all(a.flags.writeable for a in arrays)
