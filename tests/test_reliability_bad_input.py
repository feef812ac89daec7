"""Catalogue of bad input: every case gets one clear error, never a traceback or a half-written file.

Longer than the usual module on purpose: the catalogue and its tests are read side by side.
Each row is one test below (parametrised rows are one test per parameter). "CLI" rows run
`adaptive-loop` in-process and check the whole user experience: exit status 2, a single
`error: ...` line naming the file / key / value, no traceback, and no output written.
Cases already covered elsewhere are referenced, not repeated.

| # | case | input / where | outcome |
|---|------|---------------|---------|
| 1 | missing data file | CLI train, csv `data.path` | DataError naming the path; no run dir |
| 2 | data path is a directory (in-memory reader) | `read_table` | DataError "is a directory" |
| 3 | empty file (0 bytes) / header only | `read_table` | DataError "empty" / "no data rows" |
| 4 | missing label column | CLI train | DataError "missing column(s) 'click'" |
| 5 | missing declared column, close name present | `read_table` | DataError with "did you mean" |
| 6 | labels outside {0, 1} (ratings 1..5) | `read_table` | DataError naming the values |
| 7 | -1/1 labels (libFM form), bool labels | `validate_frame` | accepted, mapped to 0/1 |
| 8 | NaN label / inf label | `read_table` | DataError naming the column and first row |
| 9 | inf / text in a numeric field | `read_table` | DataError naming the column and first row |
| 10 | NaN in a numeric field | encoder | accepted: filled with 0 plus a `_missing` flag |
| 11 | wrong delimiter | `read_table` | DataError suggesting the delimiter |
| 12 | wrong encoding | `read_table` | DataError naming the byte and the encoding |
| 13 | non-integer tokens in an integer sequence field | encoder, `token_type: int` | DataError naming column, token, row |
| 14 | over-long sequence row | encoder, `overflow: error` / default | DataError naming row and max_len / last max_len kept |
| 15 | unseen categories and sequence tokens at scoring | `encode_for_scoring` | OOV id 1, not an error |
| 16 | scoring data without a label column | `encode_for_scoring` | labels NaN, not an error |
| 17 | non-integer id column | encoder | DataError naming the id column |
| 18 | corrupted parquet data file | `read_table`, streaming reader | DataError naming the file |
| 19 | unknown config key | CLI `--set train.learning_rate` | ConfigError naming the key and 'lr' |
| 20 | mistyped value / invalid value | CLI `train.epochs=many`, `train.lr=-1` | ConfigError naming the key |
| 21 | unknown dataset option / dataset name | CLI | ConfigError with the closest valid name |
| 22 | unknown schema key | `DatasetSchema.from_dict` | ConfigError "did you mean 'max_len'" |
| 23 | YAML with code tags | see tests/test_core_config.py::test_yaml_is_loaded_safely | refused by safe_load |
| 24 | device not available | see tests/test_reliability_device.py | ConfigError |
| 25 | streaming requested for a non-parquet dataset | `prepare_data` | ConfigError |
| 26 | trace depth count differs from the fitted controller | `decide` | TraceError naming both K |
| 27 | calibration trace from another model | CLI controllers evaluate | TraceError naming the FLOPs; no report |
| 28 | per-sample ids not in the trace | `align_ids` | TraceError naming the missing ids |
| 29 | trace file lacks a logit column its metadata promises | `load_trace` | TraceError naming the columns |
| 30 | truncated / non-parquet trace | CLI oracle | TraceError naming the file; no output |
| 31 | checkpoint from another config on --resume | CLI train --resume | CheckpointError naming the differing key |
| 32 | truncated checkpoint | CLI evaluate --checkpoint | CheckpointError "truncated or corrupted" |
| 33 | malicious pickle in a checkpoint | CLI evaluate --checkpoint (library: tests/test_core_io.py) | refused, payload not executed |
| 34 | --resume without a checkpoint | CLI | one line naming the run dir |
| 35 | corrupted spec.json / encoder.json | `load_run`, `FeatureEncoder.load` | ConfigError / DataError naming the file |
| 36 | controller used before fit | decide, calibrate, start, should_stop | NotFittedError saying to call fit |
| 37 | encoder used before fit | transform, streaming reader | NotFittedError |
| 38 | budget outside the feasible range | `calibrate`, CLI, budgeted oracle | BudgetError naming the range; no report |
| 39 | failed write of a trace / report / oracle labels | disk error mid-write | old file intact, no temporary left |

Expected from the other parts of the project (not here): a corrupted LightGBM model file
and an Optuna storage URL that cannot be opened (controllers / tuning tests).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from _trace_factory import make_trace

from adaptive_loop.cli import main
from adaptive_loop.config import load_config
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.pipeline import encode_for_scoring, prepare_data
from adaptive_loop.data.readers import read_table, validate_frame
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.data.spec import OOV_ID
from adaptive_loop.data.streaming import iter_encoded_batches
from adaptive_loop.errors import (
    BudgetError,
    ConfigError,
    DataError,
    NotFittedError,
    TraceError,
)
from adaptive_loop.runs import load_run
from adaptive_loop.trace import align_ids, load_trace, save_trace
from controllers.registry import make_controller
from oracle.budgeted import BudgetedOracle

SCHEMA = {"label": "click", "categorical": ["user", "item"], "numeric": ["price"],
          "sequences": [{"name": "hist", "max_len": 3, "vocab_from": "item"}]}
HEADER = "click,user,item,price,hist"


def _rows(n: int = 40) -> str:
    return "\n".join(f"{i % 2},u{i % 7},i{i % 5},{i * 0.5},i{i % 3}|i{i % 4}" for i in range(n)) + "\n"


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str], status: int = 2) -> str:
    """Run the CLI, expect exit `status` and exactly one `error: ...` line; return that line."""
    assert main(argv) == status
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def csv_config(tmp_path: Path):
    """Write a csv dataset config for a given data file; returns a factory."""

    def make(data_file: Path, schema: dict | None = None) -> Path:
        config = tmp_path / "run.yaml"
        config.write_text(json.dumps({"data": {"dataset": "csv", "schema": schema or SCHEMA, "path": str(data_file)},
                                      "train": {"epochs": 1, "progress": False}}))
        return config

    return make


@pytest.fixture(scope="module")
def schema() -> DatasetSchema:
    return DatasetSchema.from_dict(SCHEMA)


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny trained run (so tests may damage it)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


# ----------------------------------------------------------------------------- files and data
def test_01_missing_data_file_is_one_line_and_writes_nothing(tmp_path, csv_config, capsys) -> None:
    line = cli_error(["train", "--config", str(csv_config(tmp_path / "absent.csv")), "--run-dir", str(tmp_path / "r")],
                     capsys)
    assert "absent.csv does not exist" in line
    assert not (tmp_path / "r").exists()


def test_02_directory_instead_of_file(tmp_path, schema) -> None:
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path, schema)


@pytest.mark.parametrize(("content", "needle"), [("", "empty \\(0 bytes\\)"), (HEADER + "\n", "no data rows")])
def test_03_empty_file_and_header_only(tmp_path, schema, content, needle) -> None:
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=needle):
        read_table(path, schema)


def test_04_missing_label_column_via_cli(tmp_path, csv_config, capsys) -> None:
    data = tmp_path / "nolabel.csv"
    data.write_text("user,item,price,hist\n" + "\n".join(f"u{i},i{i},1.0,i1" for i in range(30)) + "\n")
    line = cli_error(["train", "--config", str(csv_config(data)), "--run-dir", str(tmp_path / "r")], capsys)
    assert "missing column(s) 'click'" in line and "nolabel.csv" in line
    assert not (tmp_path / "r").exists()


def test_05_missing_declared_column_suggests_the_close_name(tmp_path, schema) -> None:
    path = tmp_path / "d.csv"
    path.write_text("click,user,items,price,hist\n1,a,b,1.0,x\n")
    with pytest.raises(DataError, match="missing column\\(s\\) 'item' \\(did you mean 'items'\\?\\)"):
        read_table(path, schema)


def test_06_labels_outside_zero_one(tmp_path, schema) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(HEADER + "\n" + "\n".join(f"{1 + i % 5},u,i,1.0,i1" for i in range(10)) + "\n")
    with pytest.raises(DataError, match="label column 'click' has values \\{2, 3, 4, 5\\} outside \\{0, 1\\}"):
        read_table(path, schema)


def test_07_minus_one_one_and_bool_labels_are_accepted(schema) -> None:
    base = {"user": ["a", "b", "c"], "item": ["x", "y", "z"], "price": [1.0, 2.0, 3.0], "hist": ["", "x", "x|y"]}
    assert validate_frame(pd.DataFrame({"click": [-1, 1, -1], **base}), schema)["click"].tolist() == [0.0, 1.0, 0.0]
    assert validate_frame(pd.DataFrame({"click": [True, False, True], **base}), schema)["click"].tolist() == [1, 0, 1]


@pytest.mark.parametrize(("label", "needle"), [("", "1 missing \\(NaN\\) value\\(s\\), first at row 1"),
                                               ("inf", "1 infinite value\\(s\\), first at row 1")])
def test_08_nan_and_inf_labels(tmp_path, schema, label, needle) -> None:
    path = tmp_path / "d.csv"
    path.write_text(f"{HEADER}\n1,a,b,1.0,x\n{label},a,b,1.0,x\n")
    with pytest.raises(DataError, match=f"label column 'click' has {needle}"):
        read_table(path, schema)


@pytest.mark.parametrize(("price", "needle"), [("inf", "1 infinite value"), ("cheap", "1 non-numeric value")])
def test_09_inf_and_text_in_numeric_fields(tmp_path, schema, price, needle) -> None:
    path = tmp_path / "d.csv"
    path.write_text(f"{HEADER}\n1,a,b,1.0,x\n0,a,b,{price},x\n")
    with pytest.raises(DataError, match=f"numeric column 'price' has {needle}.*row 1"):
        read_table(path, schema)


def test_10_nan_in_numeric_fields_is_filled_and_flagged(schema) -> None:
    frame = pd.DataFrame({"click": [1, 0, 1], "user": ["a", "b", "c"], "item": ["x", "y", "z"],
                          "price": [1.0, np.nan, 3.0], "hist": ["", "x", "x|y"]})
    encoded = FeatureEncoder(schema).fit_transform(frame)
    assert np.isfinite(encoded.num).all() and encoded.num[1].tolist() == [0.0, 1.0]  # value 0, missing flag 1


def test_11_wrong_delimiter(tmp_path, schema) -> None:
    path = tmp_path / "d.csv"
    path.write_text(HEADER.replace(",", ";") + "\n1;a;b;1.0;x\n")
    with pytest.raises(DataError, match="wrong delimiter; the header looks ';'-separated, pass delimiter=';'"):
        read_table(path, schema)


def test_12_wrong_encoding(tmp_path, schema) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(f"{HEADER}\n1,Zoë,b,1.0,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="cannot be decoded as utf-8.*encoding='latin-1'"):
        read_table(path, schema)


def test_13_non_integer_tokens_in_an_integer_sequence() -> None:
    schema = DatasetSchema.from_dict({"label": "click", "categorical": ["item"],
                                      "sequences": [{"name": "hist", "max_len": 3, "token_type": "int"}]})
    frame = pd.DataFrame({"click": [1, 0, 1], "item": [1, 2, 3], "hist": ["1|2", "3", "4|x|2.5"]})
    with pytest.raises(DataError, match="sequence column 'hist' declares integer tokens but has 2 non-integer "
                                        "token\\(s\\) such as 'x' \\(first at row 2\\)"):
        FeatureEncoder(schema).fit(frame)
    with pytest.raises(ConfigError, match="token_type must be one of"):
        DatasetSchema.from_dict({"label": "y", "sequences": [{"name": "h", "token_type": "float"}]})


def test_14_over_long_sequence_rows() -> None:
    frame = pd.DataFrame({"click": [1, 0], "item": ["a", "b"], "hist": ["a|b", "a|b|c|d|e"]})
    strict = DatasetSchema.from_dict({"label": "click", "categorical": ["item"],
                                      "sequences": [{"name": "hist", "max_len": 3, "overflow": "error"}]})
    with pytest.raises(DataError, match="1 row\\(s\\) longer than max_len=3, first at row 1 \\(5 tokens\\)"):
        FeatureEncoder(strict).fit(frame)
    default = DatasetSchema.from_dict({"label": "click", "categorical": ["item"], "sequences": [{"name": "hist", "max_len": 3}]})
    encoder = FeatureEncoder(default).fit(frame)
    kept = encoder.transform(frame).seq["hist"][1]
    vocab = encoder.vocabularies["hist"]
    assert kept.tolist() == vocab.lookup(__import__("pyarrow").array(["c", "d", "e"])).tolist()  # the last 3


def test_15_unseen_categories_at_scoring_map_to_oov(schema) -> None:
    train = pd.DataFrame({"click": [1, 0], "user": ["a", "b"], "item": ["x", "y"], "price": [1.0, 2.0], "hist": ["x", "y"]})
    encoder = FeatureEncoder(schema).fit(train)
    new = pd.DataFrame({"user": ["never"], "item": ["seen"], "price": [1.5], "hist": ["x|nope"]})
    encoded = encode_for_scoring(encoder, new)
    assert encoded.cat.tolist() == [[OOV_ID, OOV_ID]]
    assert encoded.seq["hist"][0, 1] == OOV_ID and encoded.seq["hist"][0, 0] >= 2


def test_16_scoring_without_labels_gives_nan_labels(schema) -> None:
    train = pd.DataFrame({"click": [1, 0], "user": ["a", "b"], "item": ["x", "y"], "price": [1.0, 2.0], "hist": ["x", "y"]})
    encoder = FeatureEncoder(schema).fit(train)
    encoded = encode_for_scoring(encoder, train.drop(columns="click"))
    assert np.isnan(encoded.labels).all()
    with pytest.raises(DataError, match="missing column\\(s\\) 'click'"):
        encoder.transform(train.drop(columns="click"))


def test_17_non_integer_id_column() -> None:
    schema = DatasetSchema.from_dict({"label": "click", "categorical": ["item"], "id": "row_id"})
    frame = pd.DataFrame({"click": [1, 0], "item": ["a", "b"], "row_id": ["r1", "r2"]})
    with pytest.raises(DataError, match="id column 'row_id' must hold integers"):
        FeatureEncoder(schema).fit_transform(frame)


def test_18_corrupted_parquet_data_file(tmp_path, schema) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"click": [1, 0] * 50, "user": ["a"] * 100, "item": ["b"] * 100, "price": [1.0] * 100,
                  "hist": ["x"] * 100}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match="d.parquet is not a readable parquet file"):
        read_table(path, schema)
    encoder = FeatureEncoder(schema)
    encoder._fitted = True  # noqa: SLF001 - only the file check matters here
    with pytest.raises(DataError, match="d.parquet is not readable parquet"):
        list(iter_encoded_batches(path, encoder, 10))


# ----------------------------------------------------------------------------- configuration
def test_19_unknown_config_key_names_the_closest_one(tmp_path, capsys) -> None:
    line = cli_error(["train", "--config", "tiny", "--set", "train.learning_rate=0.1", "--run-dir", str(tmp_path / "r")],
                     capsys)
    assert "unknown config key 'train.learning_rate'; did you mean 'lr'?" in line


@pytest.mark.parametrize(("override", "needle"), [
    ("train.epochs=many", "train.epochs: expected an integer, got 'many'"),
    ("train.lr=-1", "train.lr must be > 0, got -1"),
    ("train.epochs=0", "train.epochs must be >= 1, got 0"),
    ("model.d_model=15", "model.n_heads=2 must divide model.d_model=15"),
])
def test_20_mistyped_and_invalid_values(tmp_path, capsys, override, needle) -> None:
    line = cli_error(["train", "--config", "tiny", "--set", override, "--run-dir", str(tmp_path / "r")], capsys)
    assert needle in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("override", "needle"), [
    ("data.options.n_row=10", "unknown option 'n_row' for dataset 'synthetic'; did you mean 'n_rows'?"),
    ("data.dataset=synthetc", "unknown dataset 'synthetc'; did you mean 'synthetic'?"),
])
def test_21_unknown_dataset_option_and_name(tmp_path, capsys, override, needle) -> None:
    assert needle in cli_error(["train", "--config", "tiny", "--set", override, "--run-dir", str(tmp_path / "r")], capsys)


def test_22_unknown_schema_key() -> None:
    with pytest.raises(ConfigError, match="unknown key schema.sequences\\[hist\\].max_length; did you mean 'max_len'"):
        DatasetSchema.from_dict({"label": "y", "sequences": [{"name": "hist", "max_length": 5}]})


def test_25_streaming_needs_parquet() -> None:
    config = load_config(None, ["data.streaming=true"])
    with pytest.raises(ConfigError, match="data.streaming needs dataset 'parquet'"):
        prepare_data(config.data, seed=0)


# ----------------------------------------------------------------------------- traces
def test_26_trace_depth_differs_from_the_fitted_controller() -> None:
    controller = make_controller("confidence").fit(make_trace(n=200, max_depth=5))
    with pytest.raises(TraceError, match="fitted on a trace with K=5 but got one with K=3"):
        controller.decide(make_trace(n=200, max_depth=3))


def test_27_calibration_trace_from_another_model_via_cli(tmp_path, capsys) -> None:
    test = save_trace(make_trace(n=300, seed=1), tmp_path / "test.parquet")
    calib = save_trace(make_trace(n=300, seed=2, flops=(2000.0, 200.0, 50.0)), tmp_path / "valid.parquet")
    line = cli_error(["controllers", "evaluate", "--trace", str(test), "--calibration-trace", str(calib),
                      "--controller", "confidence", "--budget-depth", "1", "--out", str(tmp_path / "out")], capsys)
    assert "come from different models (flops_entry 1000 vs 2000)" in line
    assert not (tmp_path / "out").exists()


def test_28_ids_missing_from_the_trace() -> None:
    trace = make_trace(n=50)
    np.testing.assert_array_equal(align_ids(trace, np.array([7, 3])), [7, 3])
    with pytest.raises(TraceError, match="2 of 3 ids are not in the trace \\(e.g. \\[50, 99\\]\\)"):
        align_ids(trace, np.array([1, 50, 99]), source="oracle labels")


def test_29_trace_file_lacks_a_promised_logit_column(tmp_path) -> None:
    path = save_trace(make_trace(n=40, max_depth=3), tmp_path / "t.parquet")
    table = pq.read_table(path)
    pq.write_table(table.drop(["logit_3"]).replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(TraceError, match="lacks logit columns \\['logit_3'\\] for K=3"):
        load_trace(path)


@pytest.mark.parametrize("damage", ["truncate", "not_parquet"])
def test_30_truncated_or_foreign_trace_via_cli(tmp_path, capsys, damage) -> None:
    path = save_trace(make_trace(n=100), tmp_path / "t.parquet")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_text("id,label\n1,0\n")
    line = cli_error(["oracle", "--trace", str(path), "--out", str(tmp_path / "oracle")], capsys)
    assert f"trace file {path} is not a readable parquet file" in line
    assert not (tmp_path / "oracle").exists()


# ----------------------------------------------------------------------------- checkpoints and runs
def test_31_resume_with_another_model_config(run_copy, capsys) -> None:
    line = cli_error(["train", "--config", str(run_copy / "config.yaml"), "--set", "model.d_model=32", "--resume",
                      "--run-dir", str(run_copy)], capsys)
    assert "was written for another config (model.d_model: 16 in the checkpoint, 32 now)" in line


def test_32_truncated_checkpoint_via_cli(run_copy, capsys) -> None:
    bad = run_copy / "checkpoints" / "cut.pt"
    data = (run_copy / "checkpoints" / "best.pt").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    line = cli_error(["evaluate", "--run", str(run_copy), "--checkpoint", str(bad), "--out", str(run_copy / "eval")],
                     capsys)
    assert f"checkpoint {bad} is truncated or corrupted" in line
    assert not (run_copy / "eval").exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/adaptive_loop_bad_input_exploit")


def test_33_malicious_pickle_checkpoint_via_cli(run_copy, capsys) -> None:
    MARKER.unlink(missing_ok=True)
    evil = run_copy / "checkpoints" / "evil.pt"
    torch.save({"model_state": _Exploit()}, evil)
    line = cli_error(["evaluate", "--run", str(run_copy), "--checkpoint", str(evil)], capsys)
    assert "refused by the safe loader (weights_only=True)" in line
    assert not MARKER.exists()


def test_34_resume_without_a_checkpoint(tmp_path, capsys) -> None:
    line = cli_error(["train", "--config", "tiny", "--resume", "--run-dir", str(tmp_path / "fresh")], capsys)
    assert "has no checkpoints/last.pt to resume from" in line


def test_35_corrupted_spec_and_encoder_files(run_copy) -> None:
    (run_copy / "encoder.json").write_text('{"format": "adaptive-loop/feature-encoder", "version": 1, "schema"')
    with pytest.raises(DataError, match="encoder.json is not valid JSON"):
        FeatureEncoder.load(run_copy / "encoder.json")
    (run_copy / "spec.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="spec.json is not a valid feature spec"):
        load_run(run_copy)
    (run_copy / "spec.json").unlink()
    with pytest.raises(ConfigError, match="spec.json is missing"):
        load_run(run_copy)


# ----------------------------------------------------------------------------- estimators and budgets
@pytest.mark.parametrize("call", ["decide", "calibrate", "start", "cost_range"])
def test_36_controller_used_before_fit(call) -> None:
    controller = make_controller("confidence")
    trace = make_trace(n=100)
    args = {"decide": (trace,), "calibrate": (trace, 1500.0), "start": (10,), "cost_range": (trace,)}[call]
    with pytest.raises(NotFittedError, match="is not fitted yet: call fit\\(trace\\)"):
        getattr(controller, call)(*args)


def test_37_encoder_used_before_fit(schema, tmp_path) -> None:
    with pytest.raises(NotFittedError, match="called before fit"):
        FeatureEncoder(schema).transform(pd.DataFrame({"click": [1]}))
    with pytest.raises(NotFittedError, match="needs a fitted FeatureEncoder"):
        list(iter_encoded_batches(tmp_path, FeatureEncoder(schema), 10))


def test_38_budget_outside_the_feasible_range(tmp_path, capsys) -> None:
    trace = make_trace(n=400)
    controller = make_controller("confidence").fit(trace)
    lo, hi = controller.cost_range(trace)
    with pytest.raises(BudgetError, match=f"outside the range .*\\[{lo:.6g}, {hi:.6g}\\]"):
        controller.calibrate(trace, lo * 0.5)
    with pytest.raises(BudgetError, match="below the cheapest reachable cost"):
        BudgetedOracle(trace).allocate(10.0)
    path = save_trace(trace, tmp_path / "t.parquet")
    line = cli_error(["controllers", "evaluate", "--trace", str(path), "--controller", "confidence", "--budget", "1",
                      "--out", str(tmp_path / "out")], capsys)
    assert "budget 1 FLOPs/sample is outside the range" in line
    assert not (tmp_path / "out" / "controller_report.json").exists()


# ----------------------------------------------------------------------------- half-written outputs
def _failing_writer(real):
    """Wrap a writer so it writes part of the file, then fails like a full disk."""

    def write(*args, **kwargs):
        target = next(a for a in (*args, *kwargs.values()) if isinstance(a, (str, os.PathLike)))
        Path(target).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    return write


def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_39_failed_trace_write_keeps_the_old_trace(tmp_path, monkeypatch) -> None:
    old = make_trace(n=60, seed=1)
    path = save_trace(old, tmp_path / "trace.parquet")
    before = path.read_bytes()
    monkeypatch.setattr(pq, "write_table", _failing_writer(pq.write_table))
    with pytest.raises(OSError, match="No space left"):
        save_trace(make_trace(n=60, seed=2), path)
    assert path.read_bytes() == before and _no_temporaries(tmp_path)
    np.testing.assert_array_equal(load_trace(path).logits, old.logits)


def test_39_failed_report_write_keeps_the_old_report(tiny_run, tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    from adaptive_loop.runs import load_split
    from adaptive_loop.workflows import evaluate_run

    out = tmp_path / "report"
    valid = load_split(load_run(tiny_run), "valid")
    evaluate_run(tiny_run, split="valid", out_dir=out, data=valid)
    plot = out / "per_depth_valid.png"
    before = plot.read_bytes()
    monkeypatch.setattr(Figure, "savefig", _failing_writer(Figure.savefig))
    with pytest.raises(OSError):
        evaluate_run(tiny_run, split="valid", out_dir=out, data=valid)
    assert plot.read_bytes() == before and _no_temporaries(out)
    json.loads((out / "per_depth_valid.json").read_text())  # every file is complete


def test_39_failed_oracle_labels_write_is_one_line_and_keeps_the_old_labels(tmp_path, monkeypatch, capsys) -> None:
    trace = save_trace(make_trace(n=200), tmp_path / "t.parquet")
    out = tmp_path / "oracle"
    assert main(["oracle", "--trace", str(trace), "--out", str(out)]) == 0
    labels = out / "oracle_labels.parquet"
    before = labels.read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(pd.DataFrame, "to_parquet", _failing_writer(pd.DataFrame.to_parquet))
    line = cli_error(["oracle", "--trace", str(trace), "--out", str(out)], capsys, status=1)
    assert "No space left on device" in line
    assert labels.read_bytes() == before and _no_temporaries(out)
