"""The reproduction benchmark: results structure, aggregation over seeds, claim verdicts, resumption."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from adaptive_loop.errors import ConfigError
from adaptive_loop.reproduce.aggregate import Stat, summarize_variant
from adaptive_loop.reproduce.cells import RESULT_FILE, CellResult, HeadroomSummary
from adaptive_loop.reproduce.claims import FAILS, HOLDS, UNKNOWN_SPREAD, WITHIN_NOISE, beats
from adaptive_loop.reproduce.runner import build_parser, run_benchmark
from adaptive_loop.reproduce.variants import VARIANTS, resolve_variants

VARIANTS_RUN = "loopctr_L0,loopctr_L2"


def _args(tmp: Path, *extra: str) -> list[str]:
    return [
        "--dataset", "synthetic", "--config", "tiny", "--seeds", "1", "--epochs", "1", "--max-train-rows", "1200",
        "--max-depth", "3", "--variants", VARIANTS_RUN, "--out-root", str(tmp / "runs"),
        "--results-dir", str(tmp / "results"), "--skip-throughput", "--no-progress",
        "--set", "data.options.n_rows=2000", *extra,
    ]


def _run(argv: list[str]):
    return run_benchmark(build_parser().parse_args(argv), argv)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("reproduce")
    return tmp, _run(_args(tmp))


def test_results_json_has_every_cell_with_mean_std_and_labels_the_run_reduced(finished) -> None:
    tmp, output = finished
    payload = json.loads(output.json_path.read_text())
    assert set(payload["variants"]) == {"loopctr_L0", "loopctr_L2"}
    assert payload["reduced"] and any("1 seed" in r for r in payload["reduced"])
    assert any("1,200 rows" in r for r in payload["reduced"])
    assert payload["settings"]["max_train_rows"] == 1200 and payload["train_rows"] == 1200
    for name, summary in payload["variants"].items():
        assert [row["depth"] for row in summary["per_depth"]] == [0, 1, 2, 3]  # LoopCTR runs the whole grid
        cell = json.loads((tmp / "runs" / name / "seed7" / RESULT_FILE).read_text())
        for row, cell_row in zip(summary["per_depth"], cell["test"]):
            assert row["test_auc"]["n"] == 1 and row["test_auc"]["std"] is None  # one seed: spread unknown, not 0
            assert row["test_auc"]["mean"] == pytest.approx(cell_row["auc"])
            assert row["flops_per_sample"] == cell_row["flops_per_sample"]
        assert summary["dense_parameters"] > 0 and summary["seconds_per_epoch"]["mean"] > 0
    headroom = payload["variants"]["loopctr_L2"]["headroom"]
    assert headroom["all"]["max_depth"] == 3 and headroom["trained"]["max_depth"] == 2
    assert headroom["all"]["oracle_auc"]["mean"] >= headroom["all"]["best_fixed_auc"]["mean"]
    assert [c["claim"] for c in payload["claims"]] == [1, 2, 3, 4]
    assert payload["claims"][3]["verdict"] == "not tested"  # no ablation was run
    headroom_claim = payload["claims"][2]  # one trained-loop variant (L = 2): the fewer-loops half is untested
    assert headroom_claim["verdict"] != "holds"
    assert any("fewer loops, higher ceiling: not tested" in f for f in headroom_claim["findings"])
    text = output.markdown_path.read_text()
    assert "REDUCED RUN" in text and "| L=2 |" in text
    for figure in payload["figures"].values():
        assert (tmp / "results" / figure).stat().st_size > 0


@pytest.fixture
def no_training(monkeypatch) -> None:
    """Any training fails the test: finished cells must be reused."""
    import adaptive_loop.training

    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(adaptive_loop.training, "train", refuse)


def test_rerun_skips_finished_cells_and_refuses_other_settings(finished, no_training) -> None:
    tmp, _ = finished
    result_file = tmp / "runs" / "loopctr_L0" / "seed7" / RESULT_FILE
    before = result_file.stat().st_mtime_ns
    again = _run(_args(tmp))
    assert result_file.stat().st_mtime_ns == before
    assert set(json.loads(again.json_path.read_text())["variants"]) == {"loopctr_L0", "loopctr_L2"}
    with pytest.raises(ConfigError, match="other settings"):
        _run(_args(tmp)[:-1] + ["data.options.n_rows=2100"])  # another dataset size: not the same cell


def test_fresh_checkout_reuses_archived_cells_and_refuses_archived_other_settings(finished, no_training) -> None:
    """A machine without the run directories resumes the grid from the results kept beside the reports."""
    tmp, _ = finished
    archive = tmp / "results" / "reproduce_synthetic_reduced_cells"
    archived = archive / "loopctr_L0" / "seed7.json"
    assert json.loads(archived.read_text()) == json.loads((tmp / "runs" / "loopctr_L0" / "seed7" / RESULT_FILE).read_text())
    fresh = _args(tmp)
    fresh[fresh.index("--out-root") + 1] = str(tmp / "runs_on_another_machine")
    again = _run(fresh)  # no_training: every cell must come from the archive
    assert set(json.loads(again.json_path.read_text())["variants"]) == {"loopctr_L0", "loopctr_L2"}
    assert not (tmp / "runs_on_another_machine" / "loopctr_L0").exists()
    other = fresh[:-1] + ["data.options.n_rows=2100"]
    with pytest.raises(ConfigError, match="seed7.json was started with other settings"):
        _run(other + ["--report-only"])


def test_report_rebuilt_on_a_fresh_checkout_keeps_the_archived_throughput(finished, monkeypatch) -> None:
    """The throughput measured beside the grid is archived with the cells, so --report-only elsewhere keeps it.

    The measurement itself is faked here (the tiny split is too small for it; it has its own test below):
    this test is about where the result is kept.
    """
    import shutil

    import adaptive_loop.reproduce.runner as runner
    from adaptive_loop.reproduce.throughput import MatmulRate, ThroughputResult

    rate = MatmulRate((64, 64, 64), 10.0, 1e-4)
    fake = ThroughputResult("loopctr L=3", 1, 256, 5, 2, 0.01, 25_600.0, 1e5, 3e5, 7.7, [rate], rate, 0.77, 0.77)
    calls: list[int] = []
    monkeypatch.setattr(runner, "measure_throughput", lambda config, data, steps: calls.append(steps) or fake)
    monkeypatch.setattr(runner, "profile_training", lambda config, data, path, header="": path)
    tmp, _ = finished
    results = tmp / "results_with_throughput"
    shutil.copytree(tmp / "results" / "reproduce_synthetic_reduced_cells", results / "reproduce_synthetic_reduced_cells")

    def args(out_root: str) -> list[str]:
        argv = [a for a in _args(tmp) if a != "--skip-throughput"] + ["--throughput-steps", "2"]
        argv[argv.index("--out-root") + 1] = str(tmp / out_root)
        argv[argv.index("--results-dir") + 1] = str(results)
        return argv

    measured = json.loads(_run(args("runs_measuring")).json_path.read_text())["throughput"]
    assert calls == [2] and measured == json.loads(json.dumps(fake.to_dict()))
    assert (results / "reproduce_synthetic_reduced_cells" / "throughput.json").is_file()
    rebuilt = _run(args("runs_never_used") + ["--report-only"])
    assert calls == [2]  # not measured again: read from the archive
    assert json.loads(rebuilt.json_path.read_text())["throughput"] == measured
    assert "25,600" in rebuilt.markdown_path.read_text()
    assert not (tmp / "runs_never_used").exists()


@pytest.mark.parametrize("extra, cells, report", [
    ([], "reproduce_frappe_x1_cells", "reproduce_frappe_x1"),
    # the same cells as the full grid's, fewer of them: they may finish the full grid, the report may not replace it
    (["--variants", "loopctr_L3_top4"], "reproduce_frappe_x1_cells", "reproduce_frappe_x1_reduced"),
    (["--seeds", "1"], "reproduce_frappe_x1_cells", "reproduce_frappe_x1_reduced"),
    # cells trained otherwise never mix with the full grid's
    (["--epochs", "2"], "reproduce_frappe_x1_reduced_cells", "reproduce_frappe_x1_reduced"),
    (["--set", "train.lr=0.01"], "reproduce_frappe_x1_reduced_cells", "reproduce_frappe_x1_reduced"),
    (["--epochs", "2", "--tag", "quick"], "reproduce_frappe_x1_quick_cells", "reproduce_frappe_x1_quick"),
])
def test_a_smaller_run_never_replaces_the_full_report_and_shares_only_identical_cells(
        extra: list[str], cells: str, report: str) -> None:
    from adaptive_loop.reproduce.runner import ResultNames
    from adaptive_loop.reproduce.settings import BenchmarkSettings, base_config_path

    args = build_parser().parse_args(["--dataset", "frappe_x1", *extra])
    settings = BenchmarkSettings(dataset="frappe_x1", config_path=base_config_path("frappe_x1", None),
                                 overrides=tuple(args.set), n_seeds=args.seeds, epochs=args.epochs)
    names = ResultNames.choose("frappe_x1", args.tag, settings, resolve_variants(args.variants))
    assert names.archive(Path("results")) == Path("results") / cells
    assert names.run_root == Path("runs") / "reproduce" / cells.removeprefix("reproduce_").removesuffix("_cells")
    assert names.report_stem == report


def test_unfinished_cell_resumes_from_its_checkpoint(finished) -> None:
    tmp, _ = finished
    folder = tmp / "runs" / "loopctr_L2" / "seed7"
    old = json.loads((folder / RESULT_FILE).read_text())
    (folder / RESULT_FILE).unlink()  # as if killed after training, before the evaluation was written
    (tmp / "results" / "reproduce_synthetic_reduced_cells" / "loopctr_L2" / "seed7.json").unlink()
    _run(_args(tmp))
    new = json.loads((folder / RESULT_FILE).read_text())
    assert new["epochs_run"] == old["epochs_run"] == 1  # resumed from last.pt: no epoch trained twice
    assert [r["auc"] for r in new["test"]] == pytest.approx([r["auc"] for r in old["test"]])


def _cell(seed: int, aucs: list[float]) -> CellResult:
    rows = [{"depth": d, "auc": a, "logloss": 0.5, "gauc": None, "flops_per_sample": 100.0 * (d + 1)} for d, a in enumerate(aucs)]
    head = HeadroomSummary(max_depth=len(aucs) - 1, best_fixed_depth=int(np.argmax(aucs)), best_fixed_auc=max(aucs),
                           oracle_auc=max(aucs) + 0.03, gap=0.03, oracle_mean_depth=1.0, oracle_depth_counts=[1] * len(aucs))
    return CellResult(variant="loopctr_L1", seed=seed, train_loops=1, test=rows, valid=rows, headroom={"all": head},
                      dense_parameters=10, embedding_parameters=5, flops_entry=50, flops_loop=100, flops_exit=50,
                      train_flops_per_sample=250, epochs_run=3, best_epoch=1, stopped_early=False, seconds_per_epoch=2.0 + seed,
                      samples_per_second=100.0, train_rows=1000)


def test_aggregation_gives_mean_and_sample_std_per_depth() -> None:
    cells = [_cell(0, [0.70, 0.72]), _cell(1, [0.72, 0.74]), _cell(2, [0.74, 0.73])]
    summary = summarize_variant(VARIANTS["loopctr_L1"], cells)
    assert summary.auc(0).mean == pytest.approx(0.72)
    assert summary.auc(0).std == pytest.approx(np.std([0.70, 0.72, 0.74], ddof=1))
    assert summary.auc(1).values == (0.72, 0.74, 0.73)
    assert summary.seconds_per_epoch.mean == pytest.approx(3.0)
    assert summary.headroom["all"].gap.mean == pytest.approx(0.03)
    assert summary.to_dict()["per_depth"][1]["test_auc"]["std"] == pytest.approx(0.01)


def test_beats_needs_a_lead_larger_than_the_seeds_spread() -> None:
    assert beats(Stat.of([0.80, 0.81, 0.82]), Stat.of([0.70, 0.71, 0.72])) == HOLDS
    assert beats(Stat.of([0.80, 0.81, 0.82]), Stat.of([0.79, 0.80, 0.82])) == WITHIN_NOISE
    assert beats(Stat.of([0.80]), Stat.of([0.79])) == UNKNOWN_SPREAD
    assert beats(Stat.of([0.70, 0.71]), Stat.of([0.80, 0.81])) == FAILS
    assert Stat.of([0.5]).std is None and math.isnan(Stat.of([]).mean)


def test_variant_selection_by_group_and_name() -> None:
    names = [v.name for v in resolve_variants("baselines,loopctr_L3")]
    assert names == ["deepfm", "dcnv2", "stackctr_L3", "loopctr_L3"]
    assert len(resolve_variants(None)) == 12
    with pytest.raises(ConfigError, match="unknown variant"):
        resolve_variants("loopctr_L9")


def test_throughput_times_real_training_steps_and_writes_a_profile(tmp_path: Path) -> None:
    from adaptive_loop.reproduce.runner import prepare_benchmark_data
    from adaptive_loop.reproduce.settings import BenchmarkSettings, base_config_path
    from adaptive_loop.reproduce.throughput import measure_throughput, profile_training

    settings = BenchmarkSettings("synthetic", base_config_path("synthetic", "tiny"), ("data.options.n_rows=1500",), n_seeds=1)
    config = settings.cell_config(VARIANTS["loopctr_L1"], settings.seeds[0])
    data = prepare_benchmark_data(settings, progress=False)
    result = measure_throughput(config, data, steps=3, warmup=1)
    assert result.measured_steps == 3 and result.samples_per_second > 0
    flops = result.forward_flops_per_sample
    assert result.achieved_gflops == pytest.approx(result.samples_per_second * 3 * flops / 1e9)
    assert all(m.gflops > 0 for m in result.matmul_square) and 0 < result.fraction_of_square_matmul < 1
    path = profile_training(config, data, tmp_path / "profile.txt", active=2, header="tiny")
    text = path.read_text()
    assert text.startswith("tiny") and "aten::" in text and "Self CPU" in text


def test_baselines_train_on_their_own_recipe_with_the_shared_split() -> None:
    from adaptive_loop.reproduce.settings import BenchmarkSettings, base_config_path

    settings = BenchmarkSettings("frappe_x1", base_config_path("frappe_x1", None), epochs=5)
    deepfm = settings.cell_config(VARIANTS["deepfm"], settings.seeds[1])
    loop = settings.cell_config(VARIANTS["loopctr_L3"], settings.seeds[1])
    assert deepfm.model.name == "deepfm" and deepfm.model.embed_dim == 10  # BARS's size, not LoopCTR's 16
    assert deepfm.data == loop.data and deepfm.seed == loop.seed == settings.seeds[1]
    assert deepfm.train.epochs == loop.train.epochs == 5 and deepfm.train.num_threads == 1
    recorded = settings.to_dict([VARIANTS["deepfm"], VARIANTS["loopctr_L3"]])
    assert recorded["config"] == "builtin:frappe_x1"
    assert recorded["variant_configs"] == {"deepfm": "builtin:deepfm_frappe_x1", "loopctr_L3": "builtin:frappe_x1"}
    shared = BenchmarkSettings("frappe_x1", base_config_path("frappe_x1", None), own_baseline_configs=False)
    assert shared.cell_config(VARIANTS["deepfm"], shared.seeds[0]).model.embed_dim == loop.model.embed_dim


def test_shards_train_disjoint_cells_that_together_make_the_grid(tmp_path: Path, monkeypatch) -> None:
    from adaptive_loop.reproduce import runner

    args = _args(tmp_path)
    args[args.index("--seeds") + 1] = "2"
    trained: list[tuple[str, int]] = []

    def fake_cell(variant, seed, settings, data, out_root, on_epoch=None, archive=None):
        trained.append((variant.name, seed))
        return None, False

    parsed = build_parser().parse_args(args + ["--shard", "2/3"])
    assert parsed.shard == (2, 3)
    monkeypatch.setattr(runner, "run_cell", fake_cell)
    monkeypatch.setattr(runner, "prepare_benchmark_data", lambda settings, progress=True: None)
    per_shard = []
    for k in (1, 2, 3):
        trained.clear()
        assert run_benchmark(build_parser().parse_args(args + ["--shard", f"{k}/3"]), args) is None
        per_shard.append(list(trained))
    grid = [(v, s) for s in (7, 8) for v in ("loopctr_L0", "loopctr_L2")]
    assert sorted(sum(per_shard, [])) == sorted(grid) and per_shard[1] == [grid[1]] and len(per_shard[0]) == 2
    for bad in ("0/3", "4/3", "2", "a/b"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(args + ["--shard", bad])


def test_a_cell_saved_before_a_config_key_existed_is_reused(finished, no_training) -> None:
    tmp, _ = finished
    from adaptive_loop.reproduce.cells import FINGERPRINT_FILE

    path = tmp / "runs" / "loopctr_L0" / "seed7" / FINGERPRINT_FILE
    original = path.read_text()
    saved = json.loads(original)
    assert saved["config"]["train"].pop("train_memory_mb", "missing") is None  # a key added with a null default
    try:
        path.write_text(json.dumps(saved))
        _run(_args(tmp))  # the missing key counts with its default: the cell is reused, not refused
        saved["config"]["train"]["eval_memory_mb"] = 1.0  # a saved value that differs from today's is still refused
        path.write_text(json.dumps(saved))
        with pytest.raises(ConfigError, match="eval_memory_mb"):
            _run(_args(tmp))
    finally:
        path.write_text(original)
