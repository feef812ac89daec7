"""`adaptive-loop score` on a trained run: named and saved controllers, split and CSV inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adaptive_loop.cli import main
from adaptive_loop.trace import load_trace
from controllers.persistence import load_controller


@pytest.fixture(scope="module")
def scored(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """Traces of the tiny run, then `score` with a controller calibrated on the valid trace."""
    from adaptive_loop.workflows import trace_run

    folder = tmp_path_factory.mktemp("engine_cli")
    for split in ("valid", "test"):
        trace_run(tiny_run, split, folder / f"trace_{split}.parquet")
    out = folder / "scores.parquet"
    code = main([
        "score", "--model", str(tiny_run), "--controller", "stability", "--param", "criterion=delta_logit",
        "--calibration-trace", str(folder / "trace_valid.parquet"), "--budget-depth", "1.8",
        "--data", "test", "--out", str(out), "--batch-size", "128", "--save-controller", str(folder / "ctrl"),
        "--no-progress",
    ])
    assert code == 0
    return folder, out


def test_scores_of_the_test_split_equal_the_offline_decision(scored) -> None:
    folder, out = scored
    frame = pd.read_parquet(out)
    controller = load_controller(folder / "ctrl")
    trace = load_trace(folder / "trace_test.parquet")
    offline = controller.decide(trace)
    np.testing.assert_array_equal(frame["id"], trace.ids)
    np.testing.assert_array_equal(frame["depth"], offline.depth)
    np.testing.assert_allclose(frame["flops"], offline.cost, rtol=1e-5)
    np.testing.assert_allclose(frame["logit"], offline.logits(trace), atol=1e-5)
    summary = json.loads((folder / "scores.parquet.summary.json").read_text())
    assert summary["n_rows"] == trace.n_samples and summary["auc"] is not None
    assert summary["mean_flops"] == pytest.approx(offline.mean_cost)


def test_saved_controller_scores_a_csv_without_labels(scored, tiny_run: Path, capsys) -> None:
    from adaptive_loop.config import load_config
    from adaptive_loop.data.datasets import load_raw_dataset
    from adaptive_loop.data.pipeline import _loader_options

    folder, out = scored
    config = load_config(tiny_run / "config.yaml")
    dataset = load_raw_dataset(config.data.dataset, None, **_loader_options(config.data, config.seed))
    rows = dataset.test.drop(columns=["label"]).reset_index(drop=True)
    for column in [s.name for s in dataset.schema.sequences]:
        rows[column] = ["|".join(str(v) for v in items) for items in rows[column]]
    rows["user"] = rows["user"].astype(str)
    rows.loc[:4, "user"] = "never-seen-user"  # unseen category -> OOV, not an error
    csv = folder / "rows.csv"
    rows.to_csv(csv, index=False)
    code = main(["score", "--model", str(tiny_run), "--controller", str(folder / "ctrl"), "--data", str(csv),
                 "--out", str(folder / "rows_scored.csv"), "--batch-size", "70", "--no-progress"])
    assert code == 0
    got = pd.read_csv(folder / "rows_scored.csv")
    assert "label" not in got.columns and len(got) == len(rows)
    reference = pd.read_parquet(out)  # the same rows scored from the run's own test split
    np.testing.assert_array_equal(got["depth"][5:], reference["depth"][5:])
    np.testing.assert_allclose(got["prob"][5:], reference["prob"][5:], atol=1e-6)
    assert "AUC" not in capsys.readouterr().out


def test_score_reports_fixable_mistakes_as_one_line(scored, tiny_run: Path, capsys) -> None:
    folder, _ = scored
    base = ["score", "--model", str(tiny_run), "--data", "test", "--out", str(folder / "x.parquet")]
    assert main(base + ["--controller", "no_such_controller"]) == 2
    assert "neither a saved controller folder" in capsys.readouterr().err
    assert main(base + ["--controller", "confidence"]) == 2
    assert "--calibration-trace" in capsys.readouterr().err
    assert main(base + ["--controller", str(folder / "ctrl"), "--budget", "1e5"]) == 2
    assert "already fitted" in capsys.readouterr().err
    assert not (folder / "x.parquet").exists()


def test_score_dataset_api_with_sequence_sharing_matches_the_valid_trace(scored, tiny_run: Path) -> None:
    from adaptive_loop.engine import score_dataset

    folder, _ = scored
    controller = load_controller(folder / "ctrl")
    summary = score_dataset(tiny_run, controller, "valid", folder / "valid.csv", batch_size=100, share_sequence=True)
    trace = load_trace(folder / "trace_valid.parquet")
    offline = controller.decide(trace)
    frame = pd.read_csv(folder / "valid.csv")
    assert summary.n_rows == trace.n_samples and summary.n_batches == -(-trace.n_samples // 100)
    # The controller was calibrated on this very trace, so its delta sits exactly on some rows' change
    # between depths; sharing the sequence computes the same logits to ~1e-6, which may flip such a
    # tie. Every other row must get the offline depth and logit.
    moved = np.abs(np.diff(trace.logits.astype(np.float64), axis=1))
    at_tie = (np.abs(moved - controller.delta) < 1e-4).any(axis=1)
    same = frame["depth"].to_numpy() == offline.depth
    assert at_tie.mean() <= 0.02 and (same | at_tie).all()
    np.testing.assert_allclose(frame["logit"][same], offline.logits(trace)[same], atol=1e-5)
    if same.all():
        assert summary.depth_histogram == np.bincount(offline.depth, minlength=trace.max_depth + 1).tolist()
