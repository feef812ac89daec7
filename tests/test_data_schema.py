"""Dataset schema: YAML-friendly round trip and clear errors for unknown keys."""

import pytest
import yaml

from adaptive_loop.data.schema import CategoricalField, DatasetSchema, NumericField, SequenceField, load_schema
from adaptive_loop.errors import ConfigError

RAW = {
    "label": "click",
    "group": "user",
    "id": "row_id",
    "categorical": ["user", {"name": "item", "min_count": 2}, {"name": "brand", "vocab": "brands"}],
    "numeric": ["price", {"name": "age", "missing_flag": False}],
    "sequences": [
        {"name": "hist_items", "max_len": 10, "vocab_from": "item"},
        {"name": "tags", "max_len": 5, "delimiter": ",", "pooled": True},
    ],
    "token_groups": [["user", "age"], ["item", "brand", "price", "tags"]],
}


def test_round_trip_through_yaml() -> None:
    schema = DatasetSchema.from_dict(RAW)
    assert schema.categorical[1] == CategoricalField("item", min_count=2)
    assert schema.numeric[1] == NumericField("age", missing_flag=False)
    assert schema.sequences[0] == SequenceField("hist_items", max_len=10, vocab_from="item")
    back = DatasetSchema.from_dict(yaml.safe_load(yaml.safe_dump(schema.to_dict())))
    assert back == schema
    assert schema.vocab_name("hist_items") == "item" and schema.vocab_name("brand") == "brands"
    assert schema.columns() == ["click", "user", "item", "brand", "price", "age", "hist_items", "tags", "row_id"]


def test_yaml_file(tmp_path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(RAW))
    assert load_schema(str(path)) == DatasetSchema.from_dict(RAW)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({**RAW, "lable": "x"}, "did you mean 'label'"),
        ({**RAW, "sequences": [{"name": "h", "max_length": 3}]}, "did you mean 'max_len'"),
        ({**RAW, "categorical": [{"name": "user", "min_cnt": 3}]}, "did you mean 'min_count'"),
    ],
)
def test_unknown_key_names_the_closest_valid_one(raw, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        DatasetSchema.from_dict(raw)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"sequences": [{"name": "h", "vocab_from": "itme"}]}, "did you mean 'item'"),
        ({"token_groups": [["user"], ["user"]]}, "more than one group"),
        ({"token_groups": [["hist_items"]]}, "non-pooled sequence"),
        ({"categorical": ["user", "user"]}, "twice"),
        ({"sequences": [{"name": "a", "max_len": 3}, {"name": "b", "max_len": 4}], "token_groups": None}, "share max_len"),
        ({"categorical": [{"name": "user", "min_count": "2"}]}, "expected an integer"),
    ],
)
def test_inconsistent_schemas_are_rejected(change, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        DatasetSchema.from_dict({**RAW, **change})
