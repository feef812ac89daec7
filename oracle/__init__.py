"""Oracle analysis of depth traces: best depth per sample, headroom, budgeted oracle, gains.

Everything here works on a `DepthTrace` with numpy only (no torch) and uses the labels: the
results are ceilings and training targets, never deployable predictions.

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
- `decompose_headroom(trace, seed_traces=..., mc_traces=..., predictability=True)` ->
  `HeadroomDecomposition`: how much of the headroom the same oracle gains over predictions
  that differ in no depth (`parametric_null`, `exchangeable_null`), the excess with a
  paired bootstrap interval (`compare_with_nulls`) and the share a label-free depth choice
  reaches (`predictability_bound`); `write_decomposition` writes JSON, markdown and a figure;
- `per_sample_bce`, `depth_costs`, `cost_units`, `logits_at`: the building blocks.

Example::

    from adaptive_loop.trace import load_trace
    from oracle import budgeted_oracle_curve, headroom_table, oracle_depths

    trace = load_trace("runs/tiny/trace_test.parquet")
    print(headroom_table(trace).to_text())              # fixed depths vs oracle, AUC gap
    depths = oracle_depths(trace)                       # int64 [n], ties to the shallowest
    print(budgeted_oracle_curve(trace).to_markdown())   # best AUC per FLOPs/sample budget
"""

from oracle.agreement import DepthAgreement, depth_agreement, needed_depth_agreement
from oracle.budgeted import (
    BudgetedAllocation,
    BudgetedOracle,
    BudgetedOracleCurve,
    budgeted_oracle,
    budgeted_oracle_curve,
)
from oracle.decomposition import HeadroomDecomposition, decompose_headroom, write_decomposition
from oracle.depths import cost_units, depth_costs, logits_at, oracle_depths, per_sample_bce
from oracle.excess import ExcessAnalysis, Interval, NullComparison, compare_with_nulls
from oracle.gains import GainTargets, gain_targets, gains_from_bce
from oracle.headroom import DepthScore, HeadroomTable, OracleScore, fixed_depth_scores, headroom_table
from oracle.null import NullCandidates, exchangeable_null, logits_at_depth, parametric_null
from oracle.predictability import PredictabilityBound, predictability_bound

__all__ = [
    "BudgetedAllocation",
    "BudgetedOracle",
    "BudgetedOracleCurve",
    "DepthAgreement",
    "DepthScore",
    "ExcessAnalysis",
    "GainTargets",
    "HeadroomDecomposition",
    "HeadroomTable",
    "Interval",
    "NullCandidates",
    "NullComparison",
    "OracleScore",
    "PredictabilityBound",
    "budgeted_oracle",
    "budgeted_oracle_curve",
    "compare_with_nulls",
    "cost_units",
    "decompose_headroom",
    "depth_agreement",
    "depth_costs",
    "exchangeable_null",
    "fixed_depth_scores",
    "gain_targets",
    "gains_from_bce",
    "headroom_table",
    "logits_at",
    "logits_at_depth",
    "needed_depth_agreement",
    "oracle_depths",
    "parametric_null",
    "per_sample_bce",
    "predictability_bound",
    "write_decomposition",
]
