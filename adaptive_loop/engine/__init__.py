"""The adaptive inference engine: per-sample depth that saves wall-clock time, not only FLOPs.

The engine drives a trained model's step-wise API with a fitted controller so that every
loop step runs only on the rows that still need it, and charges each row what really ran
(Entry, its loop steps, every Exit evaluation and the controller's own FLOPs), priced like
the offline trace evaluation.

Main entry points:

- `AdaptiveScorer(model, controller, share_sequence=False)`: `score_batch(batch)` or
  `score_encoded(data)` -> `ScoredBatch` (probs, logits, depth, exits and FLOPs per row);
- `score_dataset(run_dir, controller, data, out_path)` -> `ScoreSummary`: a whole file or
  split, streamed in batches, written atomically (`score_stream` for your own chunks);
- `resolve_controller`: a controller from a saved folder, or fitted and calibrated on a trace.

Example::

    from adaptive_loop.engine import AdaptiveScorer, score_dataset
    from adaptive_loop.runs import load_run, load_split
    from controllers import load_controller

    run = load_run("runs/tiny")
    controller = load_controller("runs/tiny/confidence_ctrl")   # written by save_controller
    scored = AdaptiveScorer(run.model, controller).score_encoded(load_split(run, "test"))
    print(scored.depth, scored.flops)                           # per row: loop steps, FLOPs paid
    summary = score_dataset("runs/tiny", controller, "test", "scores.parquet")  # a split or a file

Modules:

- `scorer`: gather/scatter scoring for incremental controllers, depth-bucketed scoring for
  up-front controllers, optional per-user sequence sharing;
- `dataset`: streaming over parquet/CSV/built-in splits with bounded memory, atomic output;
- `controller_source`: a controller from a saved folder or fitted and calibrated on a trace;
- `reference`: the naive masked loop and fixed-depth scoring the engine is benchmarked against.

The command `adaptive-loop score` is `adaptive_loop.cli.score_command`.
"""

from adaptive_loop.engine.controller_source import ControllerOrigin, resolve_controller
from adaptive_loop.engine.dataset import ScoreSummary, StreamingAUC, iter_scoring_chunks, score_dataset, score_stream
from adaptive_loop.engine.scorer import AdaptiveScorer, ScoredBatch, StageTimes

__all__ = [
    "AdaptiveScorer",
    "ControllerOrigin",
    "ScoreSummary",
    "ScoredBatch",
    "StageTimes",
    "StreamingAUC",
    "iter_scoring_chunks",
    "resolve_controller",
    "score_dataset",
    "score_stream",
]
