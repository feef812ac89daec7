"""Built-in loaders on the shared public data (skipped with a reason when it is absent, failed under CI)."""

import os

import numpy as np
import pandas as pd
import pytest

from adaptive_loop.data.datasets import load_raw_dataset, resolve_data_root
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.errors import DataError

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def data_root():
    try:
        return resolve_data_root(None)
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the shared data root is missing: {exc}")
        pytest.skip(f"shared data not available ({exc})")


@pytest.fixture(scope="module")
def frappe(data_root):
    return load_raw_dataset("frappe_x1", data_root, seed=2020)


@pytest.fixture(scope="module")
def movielens(data_root):
    return load_raw_dataset("movielens_100k", data_root, max_seq_len=20)


def test_frappe_valid_test_are_the_published_files(frappe) -> None:
    assert len(frappe.valid) == 57_722 and len(frappe.test) == 28_860
    assert int(frappe.valid["label"].sum()) == 19_063 and int(frappe.test["label"].sum()) == 9_536
    for part in (frappe.valid, frappe.test):
        assert 0.32 < part["label"].mean() < 0.34
    assert list(frappe.valid.columns) == ["label", "user", "item", "daytime", "weekday", "isweekend",
                                          "homework", "cost", "weather", "country", "city"]
    # first line of frappe.validation.libfm: 1 266:1 1244:1 5042:1 ... (daytime id 5042 = 4th value, 'sunset')
    first = frappe.valid.iloc[0]
    assert (first["label"], first["user"], first["item"], first["daytime"]) == (1, 266, 1244 - 957, "sunset")


def test_frappe_train_is_rebuilt_exactly(frappe) -> None:
    train = frappe.train
    assert len(train) == 202_027
    assert int(train["label"].sum()) == 67_604
    assert sum(train[c].nunique() for c in frappe.schema.feature_names) == 5_379
    # negatives never repeat a logged (user, context, item)
    fields = frappe.schema.feature_names
    positives = train[train["label"] == 1][fields].drop_duplicates()
    clash = train[train["label"] == 0][fields].merge(positives, how="inner")
    assert clash.empty


def test_frappe_rebuild_is_seeded(frappe, data_root) -> None:
    again = load_raw_dataset("frappe_x1", data_root, seed=2020)
    pd.testing.assert_frame_equal(again.train, frappe.train)


def test_frappe_encodes_with_train_vocabularies(frappe) -> None:
    enc = FeatureEncoder(frappe.schema).fit(frappe.train)
    spec = enc.feature_spec()
    assert [f.name for f in spec.categorical][:2] == ["user", "item"]
    assert sum(f.vocab_size - 2 for f in spec.categorical) == 5_379
    test = enc.transform(frappe.test)
    assert test.cat.shape == (28_860, 10) and test.groups is not None


def test_movielens_history_has_no_leakage(movielens) -> None:
    events = pd.concat([movielens.train, movielens.valid, movielens.test], ignore_index=True)
    assert len(events) == 100_000
    when = dict(zip(zip(events["user"], events["item"]), events["timestamp"]))
    hist = events["hist_items"]
    lengths = hist.list.len().to_numpy()
    assert lengths.max() == 20 and lengths.min() == 0
    flat = hist.list.flatten().to_numpy()
    owner = np.repeat(np.arange(len(events)), lengths)
    item_time = np.array([when[(u, i)] for u, i in zip(events["user"].to_numpy()[owner], flat)])
    assert (item_time < events["timestamp"].to_numpy()[owner]).all()


def test_movielens_split_is_time_ordered(movielens) -> None:
    assert movielens.train["timestamp"].max() < movielens.valid["timestamp"].min()
    assert movielens.valid["timestamp"].max() < movielens.test["timestamp"].min()
    assert 0.78 < len(movielens.train) / 100_000 < 0.82
    assert set(movielens.train["label"].unique()) == {0, 1}
    spec = FeatureEncoder(movielens.schema).fit(movielens.train).feature_spec()
    seq = {s.name: s for s in spec.sequences}
    assert seq["hist_items"].table == "item" and not seq["hist_items"].pooled and seq["genres"].pooled


def test_open_bandit_loads(data_root) -> None:
    raw = load_raw_dataset("open_bandit", data_root, seed=0)
    assert (len(raw.train), len(raw.valid), len(raw.test)) == (8_000, 1_000, 1_000)
    enc = FeatureEncoder(raw.schema).fit(raw.train)
    data = enc.transform(raw.valid)
    assert data.cat.shape[1] == 9 and data.num.shape[1] == 2 and np.isfinite(data.num).all()
    assert set(np.unique(data.labels)) <= {0.0, 1.0}


def test_missing_root_names_the_path_and_the_fix(tmp_path) -> None:
    with pytest.raises(DataError, match="--data-root") as info:
        load_raw_dataset("frappe_x1", tmp_path / "nowhere")
    assert "nowhere" in str(info.value)
    with pytest.raises(DataError, match="frappe.csv"):
        load_raw_dataset("frappe_x1", tmp_path)
