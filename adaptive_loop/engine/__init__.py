"""The adaptive inference engine: per-sample depth that saves wall-clock time, not only FLOPs.

    from adaptive_loop.engine import AdaptiveScorer, score_dataset

    scorer = AdaptiveScorer(model, controller)             # any fitted controller
    scored = scorer.score_batch(batch)                     # ScoredBatch: probs, depth, flops per row
    summary = score_dataset("runs/frappe", controller, "new.parquet", "scores.parquet")

- `scorer`: gather/scatter scoring for incremental controllers, depth-bucketed scoring for
  up-front controllers, optional per-user sequence sharing;
- `dataset`: streaming over parquet/CSV/built-in splits with bounded memory, atomic output;
- `controller_source`: a controller from a saved folder or fitted and calibrated on a trace;
- `reference`: the naive masked loop and fixed-depth scoring the engine is benchmarked against;
- `cli`: `adaptive-loop score`.
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
