"""`benchmarks/routing.py` end to end on the tiny config: both runs trained, the issue's JSON
shape, resuming without retraining, and one clear error for a dataset without a config."""

from __future__ import annotations

import json

import numpy as np
from _bench_scripts import load_benchmark

from adaptive_loop.cost import CostModel
from adaptive_loop.trace import load_trace


def test_benchmark_trains_both_runs_writes_the_issue_shape_and_resumes(tmp_path, tiny_config_path, capsys):
    import yaml

    bench = load_benchmark("routing")
    runs, out = tmp_path / "runs", tmp_path / "out"
    config = yaml.safe_load(tiny_config_path.read_text())
    config["data"]["options"]["n_rows"] = 1200
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    args = ["--dataset", "tiny", "--config", f"tiny={tmp_path / 'tiny.yaml'}", "--capacity", "0.5,0.25", "--epochs", "tiny=1",
            "--max-steps", "tiny=4", "--posthoc", "confidence:criterion=margin", "--bootstrap", "50", "--repeats", "2",
            "--routed-set", "train.routing.process_weight=0.7", "--matched-ps",
            "--runs-dir", str(runs), "--out", str(out), "--no-progress"]
    assert bench.main(args) == 0
    routed = yaml.safe_load((runs / "tiny" / "routed" / "config.yaml").read_text())["train"]
    ps = yaml.safe_load((runs / "tiny" / "process_supervised" / "config.yaml").read_text())["train"]
    assert routed["routing"]["process_weight"] == 0.7 and ps["routing"]["mode"] == "off"  # --routed-set: routed run only
    assert np.allclose(ps["depth_loss_weights"], [0.5 + 0.7 / 3, 0.25 + 0.7 / 3, 0.25 + 0.7 / 3])  # --matched-ps: capacities 0.5, 0.25
    record = json.loads((out / "routing.json").read_text())["tiny"]
    assert {"mean_flops", "routed_auc", "frontier_auc", "ci", "best_posthoc_auc"} <= set(record)
    ps_test = load_trace(runs / "tiny" / "process_supervised" / "trace_test_k2.parquet")
    assert record["mean_flops"] == CostModel.from_trace(ps_test).fixed_depth(1)
    assert record["ci"][0] <= record["ci"][1]
    assert record["details"]["same_flops_per_part"] and record["details"]["runs"]["capped"]
    assert np.isclose(sum(record["details"]["routed_depth_share_test"]), 1.0)
    assert "capped" in (out / "routing.md").read_text() or "steps/epoch" in (out / "routing.md").read_text()
    assert (out / "routing.png").stat().st_size > 0
    kept = (runs / "tiny" / "record.json").stat().st_mtime_ns
    assert bench.main(args) == 0  # finished: nothing is trained or evaluated again
    assert (runs / "tiny" / "record.json").stat().st_mtime_ns == kept
    assert "finished earlier" in capsys.readouterr().err


def test_a_dataset_without_a_config_is_one_clear_error(tmp_path, capsys):
    bench = load_benchmark("routing")
    assert bench.main(["--dataset", "nowhere", "--runs-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "error: no config for dataset(s) ['nowhere']" in capsys.readouterr().err


def test_matched_ps_with_a_given_process_supervised_run_is_one_clear_error(tmp_path, capsys):
    bench = load_benchmark("routing")
    assert bench.main(["--dataset", "synthetic", "--matched-ps", "--ps-run", f"synthetic={tmp_path}",
                       "--runs-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--matched-ps trains the process-supervised runs itself; drop --ps-run for synthetic" in capsys.readouterr().err
