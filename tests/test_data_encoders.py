"""FeatureEncoder: fitted on train only, OOV/min_count/padding/NaN rules, shared vocabularies, JSON round trip."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.data.spec import OOV_ID, PAD_ID, FeatureSpec
from adaptive_loop.errors import DataError, NotFittedError

SCHEMA = DatasetSchema.from_dict(
    {
        "label": "y",
        "group": "user",
        "categorical": ["user", "item", {"name": "city", "min_count": 2}],
        "numeric": ["price"],
        "sequences": [
            {"name": "hist", "max_len": 3, "vocab_from": "item"},
            {"name": "tags", "max_len": 4, "delimiter": ",", "pooled": True},
        ],
        "token_groups": [["user", "city"], ["item", "price", "tags"]],
    }
)


def _train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": [1, 0, 1, 0],
            "user": ["u1", "u2", "u1", None],
            "item": [10, 11, 10, 12],
            "city": ["paris", "paris", "rome", "paris"],
            "price": [1.0, 3.0, np.nan, 2.0],
            "hist": ["10|11|13|14", "", None, "11"],
            "tags": ["a,b", "b", "c", ""],
        }
    )


def _test() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": [0, 1],
            "user": ["u9", "u2"],
            "item": [99, 11],
            "city": ["rome", "oslo"],
            "price": [np.nan, 2.0],
            "hist": ["99|10", "11|11|11|11|11"],
            "tags": ["z", None],
        }
    )


def test_transform_before_fit_raises() -> None:
    with pytest.raises(NotFittedError, match="before fit"):
        FeatureEncoder(SCHEMA).transform(_train())


def test_ids_padding_oov_and_min_count() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    train, test = enc.transform(_train()), enc.transform(_test())
    user, item, city = 0, 1, 2
    assert train.cat[3, user] == PAD_ID  # missing categorical -> 0
    assert test.cat[0, user] == OOV_ID and test.cat[0, item] == OOV_ID  # unseen at fit time -> 1
    assert train.cat[2, city] == OOV_ID  # 'rome' seen once, min_count=2
    assert test.cat[0, city] == OOV_ID and test.cat[1, city] == OOV_ID
    assert train.cat[0, city] >= 2
    assert (train.cat[[0, 2], user] == train.cat[0, user]).all()
    # most frequent first: item 10 (twice in item + once in hist) gets id 2
    assert train.cat[0, item] == 2
    assert train.labels.dtype == np.float32 and train.labels.tolist() == [1, 0, 1, 0]


def test_sequences_keep_the_last_items_left_aligned() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    train, test = enc.transform(_train()), enc.transform(_test())
    item_id = {v: enc.transform(_train()).cat[i, 1] for i, v in enumerate([10, 11, 10, 12])}
    # "10|11|13|14" with max_len 3 keeps 11, 13, 14 (most recent last)
    hist = train.seq["hist"]
    assert hist.shape == (4, 3) and hist.dtype == np.int64
    assert hist[0, 0] == item_id[11] and (hist[0, 1:] >= 2).all()
    assert hist[1].tolist() == [0, 0, 0] and hist[2].tolist() == [0, 0, 0]  # empty and missing
    assert hist[3].tolist() == [item_id[11], 0, 0]
    assert test.seq["hist"][0].tolist() == [OOV_ID, item_id[10], 0]
    assert test.extras["seq_len"].tolist() == [2, 3]
    assert train.seq["tags"].shape == (4, 4) and test.seq["tags"][1].tolist() == [0, 0, 0, 0]


def test_shared_vocabulary_in_the_spec() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    spec = enc.feature_spec()
    by_name = {f.name: f for f in (*spec.categorical, *spec.sequences)}
    assert by_name["item"].table == by_name["hist"].table == "item"
    # items 10, 11, 12 from the field plus 13, 14 seen only in histories, + 2 reserved ids
    assert by_name["item"].vocab_size == by_name["hist"].vocab_size == 7
    assert by_name["user"].vocab_size == 4 and by_name["user"].vocab_name == ""
    assert by_name["tags"].pooled and not by_name["hist"].pooled
    assert [f.name for f in spec.numeric] == ["price", "price_missing"]
    assert spec.token_groups == (("user", "city"), ("item", "price", "price_missing", "tags"))
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_fit_uses_the_training_split_only() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    before = enc.feature_spec()
    enc.transform(_test())
    assert enc.feature_spec() == before
    assert "99" not in enc.vocabularies["item"].values


def test_numeric_standardised_with_train_stats_and_nan_filled() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    train, test = enc.transform(_train()), enc.transform(_test())
    assert train.num.dtype == np.float32 and train.num.shape == (4, 2)
    assert np.isclose(train.num[[0, 1, 3], 0].mean(), 0.0, atol=1e-6)
    assert train.num[2].tolist() == [0.0, 1.0]  # NaN -> 0 plus the missing flag
    assert test.num[0].tolist() == [0.0, 1.0]
    assert np.isclose(test.num[1, 0], 0.0, atol=1e-6)  # 2.0 is the train mean
    with pytest.raises(DataError, match="infinite"):
        enc.transform(_test().assign(price=[np.inf, 1.0]))


def test_groups_and_ids() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    train, test = enc.transform(_train()), enc.transform(_test())
    assert train.groups.tolist()[:3] == [0, 1, 0]
    assert test.groups[1] == train.groups[1] and test.groups[0] >= 3  # unseen group: a new code
    assert test.ids.tolist() == [0, 1]


def test_save_load_round_trip_gives_identical_transform(tmp_path) -> None:
    enc = FeatureEncoder(SCHEMA, min_count=1).fit(_train())
    enc.save(tmp_path / "encoder.json")
    back = FeatureEncoder.load(tmp_path / "encoder.json")
    a, b = enc.transform(_test()), back.transform(_test())
    for name in ("cat", "num", "labels", "ids", "groups"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in a.seq:
        np.testing.assert_array_equal(a.seq[name], b.seq[name])
    assert back.feature_spec() == enc.feature_spec()
    assert not any(p.suffix == ".tmp" for p in tmp_path.iterdir())
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a saved feature encoder"):
        FeatureEncoder.load(tmp_path / "bad.json")


def test_list_and_arrow_sequence_columns_match_strings() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    as_lists = _train().assign(hist=[[10, 11, 13, 14], [], None, [11]])
    offsets = pa.array([0, 4, 4, 4, 5], type=pa.int32())
    arrow = pa.ListArray.from_arrays(offsets, pa.array([10, 11, 13, 14, 11]))
    as_arrow = _train().assign(hist=pd.arrays.ArrowExtensionArray(arrow))
    expected = enc.transform(_train()).seq["hist"]
    np.testing.assert_array_equal(enc.transform(as_lists).seq["hist"], expected)
    np.testing.assert_array_equal(enc.transform(as_arrow).seq["hist"], expected)


def test_scoring_without_labels() -> None:
    enc = FeatureEncoder(SCHEMA).fit(_train())
    out = enc.transform(_test().drop(columns="y"), require_label=False)
    assert np.isnan(out.labels).all() and len(out) == 2
    with pytest.raises(DataError, match="missing column"):
        enc.transform(_test().drop(columns="y"))


def test_large_frames_encode_quickly() -> None:
    import time

    n = 200_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n), "user": rng.integers(0, 5000, n), "item": rng.integers(0, 10000, n),
            "city": rng.integers(0, 50, n).astype(str), "price": rng.normal(size=n),
            "hist": pd.Series(rng.integers(0, 10000, n)).astype(str) + "|" + pd.Series(rng.integers(0, 10000, n)).astype(str),
            "tags": "a,b",
        }
    )
    start = time.perf_counter()
    FeatureEncoder(SCHEMA).fit(frame).transform(frame)
    assert time.perf_counter() - start < 10.0
