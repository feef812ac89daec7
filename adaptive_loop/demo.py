"""`adaptive-loop demo`: the whole workflow on the embedded synthetic data, in minutes on a CPU.

1. generate the synthetic CTR data (samples that need 0-3 loops, with that ground truth kept);
2. train LoopCTR(L=3) with process supervision;
3. print per-depth AUC / logloss / FLOPs on the test split and write them as JSON, CSV and a plot;
4. write validation and test depth traces;
5. print the oracle headroom table and how well oracle depths match the ground truth;
6. measure whether depth helps exactly the rows that need it and whether an adaptive
   controller beats every fixed depth at equal FLOPs (`demo_summary.json`, see
   `adaptive_loop.demo_summary`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from adaptive_loop.config import load_config, resolve_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.io import write_json
from adaptive_loop.training import train
from adaptive_loop.workflows import EvaluationResult, default_run_dir, evaluate_run, trace_run


@dataclass
class DemoResult:
    """What the demo produced."""

    run_dir: Path
    evaluation: EvaluationResult
    trace_paths: dict[str, Path]
    seconds: float


def run_demo(
    out_dir: str | Path | None = None,
    rows: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    extra_overrides: list[str] | None = None,
) -> DemoResult:
    """Run the demo end to end and print what it finds; returns the paths it wrote."""
    started = time.perf_counter()
    overrides = list(extra_overrides or [])
    if rows is not None:
        overrides.append(f"data.options.n_rows={rows}")
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    overrides.append(f"train.progress={'true' if progress else 'false'}")
    config = load_config(resolve_config("demo"), overrides)
    run_dir = Path(out_dir) if out_dir else default_run_dir(config, prefix="demo")
    print(f"adaptive-loop demo: results go to {run_dir}")

    print("[1/6] generating the embedded synthetic dataset ...")
    data = prepare_data(config.data, seed=config.seed, show_progress=progress)
    print(f"      train {len(data.train):,} / valid {len(data.valid):,} / test {len(data.test):,} rows")

    print(f"[2/6] training LoopCTR(L={config.model.train_loops}) with a loss at every depth ...")
    result = train(config, run_dir, data=data, progress=progress)
    print(f"      best epoch {result.best_epoch + 1}: {result.monitor} = {result.best_monitor:.4f}")

    print("[3/6] per-depth metrics on the test split:")
    evaluation = evaluate_run(run_dir, split="test", data=data.test)
    print(evaluation.table())
    print(evaluation.parameter_line())

    print("[4/6] writing depth traces ...")
    traces = {}
    for split in ("valid", "test"):
        traced = trace_run(run_dir, split, run_dir / f"trace_{split}.parquet", data=getattr(data, split))
        traces[split] = traced.path

    print("[5/6] oracle headroom on the test split:")
    from adaptive_loop.trace import load_trace
    from oracle import headroom_table, needed_depth_agreement

    test_trace = load_trace(traces["test"])
    table = headroom_table(test_trace)
    print(table.to_text())
    summary = {"headroom": table.to_dict()}
    if "needed_depth" in test_trace.features:
        agreement = needed_depth_agreement(test_trace)
        print(
            f"oracle depth vs the generator's needed depth: exact {agreement.exact:.1%}, within one "
            f"{agreement.within_one:.1%}, Spearman {agreement.spearman:.3f}"
        )
        print(agreement.to_frame().to_string(index=False))
        summary["needed_depth_agreement"] = agreement.to_dict()
    write_json(run_dir / "oracle_test.json", summary)

    print("[6/6] does depth help the rows that need it, and does a controller find them?")
    from adaptive_loop.demo_summary import DEMO_CONTROLLER, summarize_demo
    from adaptive_loop.harness.comparison import ControllerSpec

    verdict = summarize_demo(load_trace(traces["valid"]), test_trace, config.model.train_loops, seed=config.seed)
    print(verdict.to_text())
    write_json(run_dir / "demo_summary.json", verdict.to_dict())

    seconds = time.perf_counter() - started
    files = evaluation.files
    print(f"\ndone in {seconds / 60:.1f} min. Run folder: {run_dir}")
    if files:
        print(f"  per-depth results: {files.json.name}, {files.csv.name}; plot: {files.plot.name}")
    print(f"  traces: {', '.join(p.name for p in traces.values())}; oracle report: oracle_test.json; "
          "summary: demo_summary.json")
    spec = ControllerSpec.parse(DEMO_CONTROLLER)  # the summary's controller, as CLI options
    params = "".join(f" --param {k}={v}" for k, v in spec.params.items())
    print(f"  next: adaptive-loop controllers evaluate --trace {traces['test']} --calibration-trace "
          f"{traces['valid']} --controller {spec.name}{params} --budget-depth 1 --out {run_dir / 'controllers'}")
    return DemoResult(run_dir=run_dir, evaluation=evaluation, trace_paths=traces, seconds=seconds)
