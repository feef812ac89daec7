"""Oracle analysis of depth traces: best depth per sample, headroom, budgeted oracle, gains.

Everything here works on a `DepthTrace` with numpy only (no torch) and uses the labels: the
results are ceilings and training targets, never deployable predictions. The per-sample
building blocks (loss at every depth, oracle depth, gains) live beside the trace contract in
`adaptive_loop.depth_targets`, because learned controllers train on them too; they are
re-exported here.

Main entry points:

- `oracle_depths(trace, cost_lambda=0.0)`: each sample's lowest-BCE depth, int64 [n]
  (with `cost_lambda` > 0, a loop step must buy that many nats of loss);
- `headroom_table(trace)` -> `HeadroomTable`: every fixed depth, the best one, the oracle
  and the AUC gap between them (`to_text`, `to_markdown`, `to_dict`);
- `budgeted_oracle(trace, budget)` / `budgeted_oracle_curve(trace)`: the best label-aware
  AUC found when the mean cost must stay <= a budget in FLOPs/sample;
- `gain_targets(trace)` -> `GainTargets`: per-sample per-depth loss gains, the regression
  targets of learned controllers;
- `needed_depth_agreement(trace)`: oracle depth vs the synthetic data's `needed_depth`;
- `parametric_null(trace)` / `exchangeable_null(trace, seed_traces)`: predictions that
  differ in no depth but spread as much as the depths do, and `compare_with_nulls` -> the
  excess headroom of the real depths over them with a paired bootstrap interval (the
  decomposition that adds the label-free predictability bound lives in
  `adaptive_loop.harness.decomposition`, because it fits a controller's gain model);
- `per_sample_bce`: the loss of every sample at every depth, the building block (costs per
  depth come from `CostModel.depth_costs`, a sample's logit at its depth from `DepthTrace.logits_at`).

Example::

    from adaptive_loop.trace import load_trace
    from oracle import budgeted_oracle_curve, headroom_table, oracle_depths

    trace = load_trace("runs/tiny/trace_test.parquet")
    print(headroom_table(trace).to_text())              # fixed depths vs oracle, AUC gap
    depths = oracle_depths(trace)                       # int64 [n], ties to the shallowest
    print(budgeted_oracle_curve(trace).to_markdown())   # best AUC per FLOPs/sample budget
"""

from adaptive_loop.depth_targets import GainTargets, gain_targets, gains_from_bce, oracle_depths, per_sample_bce
from oracle.agreement import DepthAgreement, depth_agreement, needed_depth_agreement
from oracle.budgeted import (
    BudgetedAllocation,
    BudgetedOracle,
    BudgetedOracleCurve,
    budgeted_oracle,
    budgeted_oracle_curve,
)
from oracle.excess import ExcessAnalysis, Interval, NullComparison, compare_with_nulls
from oracle.headroom import DepthScore, HeadroomTable, OracleScore, fixed_depth_scores, headroom_table
from oracle.null import NullCandidates, exchangeable_null, logits_at_depth, parametric_null

__all__ = [
    "BudgetedAllocation",
    "BudgetedOracle",
    "BudgetedOracleCurve",
    "DepthAgreement",
    "DepthScore",
    "ExcessAnalysis",
    "GainTargets",
    "HeadroomTable",
    "Interval",
    "NullCandidates",
    "NullComparison",
    "OracleScore",
    "budgeted_oracle",
    "budgeted_oracle_curve",
    "compare_with_nulls",
    "depth_agreement",
    "exchangeable_null",
    "fixed_depth_scores",
    "gain_targets",
    "gains_from_bce",
    "headroom_table",
    "logits_at_depth",
    "needed_depth_agreement",
    "oracle_depths",
    "parametric_null",
    "per_sample_bce",
]
