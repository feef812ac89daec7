"""File reading: every user-caused problem is a DataError naming the file, column and values."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adaptive_loop.data.readers import read_table, validate_frame
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.errors import DataError

SCHEMA = DatasetSchema.from_dict(
    {"label": "y", "categorical": ["user", "item"], "numeric": ["price"],
     "sequences": [{"name": "hist", "max_len": 3}]}
)


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_reads_csv_tsv_and_parquet(tmp_path) -> None:
    frame = pd.DataFrame({"y": [1, 0], "user": ["007", "b"], "item": [3, 4], "price": [1.5, None], "hist": ["3|4", ""]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.tsv", "d.parquet"):
        got = read_table(tmp_path / name, SCHEMA)
        assert got["y"].dtype == np.float32 and got["y"].tolist() == [1.0, 0.0]
        assert np.isnan(got["price"].iloc[1])
    assert read_table(tmp_path / "d.csv", SCHEMA)["user"].iloc[0] == "007"  # leading zeros kept


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("", "empty"),
        ("y,user,item,price,hist\n", "no data rows"),
        ("y,user,price,hist\n1,a,1.0,x\n", "missing column\\(s\\) 'item'"),
        ("y,user,item,price,hist\n2,a,b,1.0,x\n", "label column 'y' has values \\{2\\}"),
        ("y,user,item,price,hist\n,a,b,1.0,x\n1,a,b,1,x\n", "missing \\(NaN\\)"),
        ("y,user,item,price,hist\nyes,a,b,1.0,x\n", "non-numeric values 'yes'"),
        ("y,user,item,price,hist\n1,a,b,inf,x\n", "numeric column 'price' has 1 infinite"),
        ("y,user,item,price,hist\n1,a,b,cheap,x\n", "numeric column 'price' has 1 non-numeric value"),
        ("y;user;item;price;hist\n1;a;b;1.0;x\n", "wrong delimiter; the header looks ';'-separated"),
    ],
)
def test_reader_errors_name_the_problem(tmp_path, content, needle) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        _write(path, content)
    with pytest.raises(DataError, match=needle) as info:
        read_table(path, SCHEMA)
    assert str(path) in str(info.value)


def test_undecodable_encoding_is_reported(tmp_path) -> None:
    path = _write(tmp_path / "latin.csv", "y,user,item,price,hist\n1,Zoë,b,1.0,x\n", encoding="latin-1")
    with pytest.raises(DataError, match="cannot be decoded as utf-8"):
        read_table(path, SCHEMA)
    assert read_table(path, SCHEMA, encoding="latin-1")["user"].iloc[0] == "Zoë"


def test_minus_one_and_bool_labels_are_mapped() -> None:
    base = {"user": ["a", "b"], "item": ["x", "y"], "price": [1.0, 2.0], "hist": ["", ""]}
    assert validate_frame(pd.DataFrame({"y": [-1, 1], **base}), SCHEMA)["y"].tolist() == [0.0, 1.0]
    assert validate_frame(pd.DataFrame({"y": [True, False], **base}), SCHEMA)["y"].tolist() == [1.0, 0.0]
    with pytest.raises(DataError, match="infinite"):
        validate_frame(pd.DataFrame({"y": [np.inf, 1], **base}), SCHEMA)
    with pytest.raises(DataError, match="outside"):
        validate_frame(pd.DataFrame({"y": [-1, 0], **base}), SCHEMA)
