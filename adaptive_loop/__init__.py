"""adaptive-loop: adaptive-depth inference for looped CTR models (LoopCTR).

A looped model (Entry -> one weight-shared Loop block applied i times -> one shared Exit)
can answer after any number of loop steps. This package trains such models with a loss at
every depth, records depth traces (every sample's logit at depths 0..K, plus the FLOPs of
each model part) and scores new data with a per-sample depth. Depth controllers live in the
sibling package `controllers`, label-aware ceilings (oracle depth, headroom) in `oracle`.

Importing `adaptive_loop` loads nothing else; the main entry points live in submodules:

- `adaptive_loop.config.load_config(path, overrides)` -> `RunConfig`, a typed YAML config
  (`adaptive_loop.config.resolve_config` finds the built-ins: tiny, demo, frappe_x1, movielens_100k);
- `adaptive_loop.training.train(config, run_dir)` -> `TrainResult`; checkpoints go to `run_dir`;
- `adaptive_loop.runs.load_run(run_dir, checkpoint="best")` -> `LoadedRun` (model, config, spec);
- `adaptive_loop.workflows.evaluate_run` / `trace_run`: per-depth metrics / the trace of a run;
- `adaptive_loop.trace_builder.build_trace(model, data, max_depth, ...)` -> `DepthTrace`;
- `adaptive_loop.trace.save_trace` / `load_trace`: traces as parquet files;
- `adaptive_loop.cost.CostModel`: FLOPs/sample of Entry, one Loop step and one Exit;
  `cost(depth, exits, controller_flops)` prices any per-sample decision;
- `adaptive_loop.harness`: evaluating controllers (AUC-vs-FLOPs curves, frontier, bootstrap, tuning);
- `adaptive_loop.engine`: `AdaptiveScorer` and `score_dataset`, adaptive depth on real batches;
- `adaptive_loop.cli.main`: the `adaptive-loop` command (train, evaluate, trace, score, ...).

The layers, bottom to top (each imports only from layers below it; README "Layout"):
core (errors, io, metrics, config_loading, hull, studies, distributed) -> data -> model ->
run config and training -> trace contract and cost model (trace, cost, depth_targets,
trace_builder) -> oracle/ and controllers/ -> harness, engine, workflows, runs -> cli, demo,
reproduce.

Example (the built-in `tiny` config: 4,000 synthetic rows, 2 epochs, the quickest run)::

    from adaptive_loop.config import load_config, resolve_config
    from adaptive_loop.cost import CostModel
    from adaptive_loop.training import train
    from adaptive_loop.workflows import trace_run

    result = train(load_config(resolve_config("tiny")), "runs/tiny")
    trace = trace_run("runs/tiny", "valid", "runs/tiny/trace_valid.parquet").trace
    cost = CostModel.from_trace(trace)                # FLOPs/sample per model part
    print(result.best_monitor, trace.logits.shape, cost.fixed_depth(trace.max_depth))
"""

__version__ = "0.1.0"
