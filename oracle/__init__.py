"""Oracle analysis of depth traces: best depth per sample, headroom, budgeted oracle, gains.

Everything here works on a `DepthTrace` with numpy only (no torch) and uses the labels: the
results are ceilings and training targets, never deployable predictions.
"""

from oracle.agreement import DepthAgreement, depth_agreement, needed_depth_agreement
from oracle.budgeted import (
    BudgetedAllocation,
    BudgetedOracle,
    BudgetedOracleCurve,
    budgeted_oracle,
    budgeted_oracle_curve,
)
from oracle.depths import cost_units, depth_costs, logits_at, oracle_depths, per_sample_bce
from oracle.gains import GainTargets, gain_targets, gains_from_bce
from oracle.headroom import DepthScore, HeadroomTable, OracleScore, fixed_depth_scores, headroom_table

__all__ = [
    "BudgetedAllocation",
    "BudgetedOracle",
    "BudgetedOracleCurve",
    "DepthAgreement",
    "DepthScore",
    "GainTargets",
    "HeadroomTable",
    "OracleScore",
    "budgeted_oracle",
    "budgeted_oracle_curve",
    "cost_units",
    "depth_agreement",
    "depth_costs",
    "fixed_depth_scores",
    "gain_targets",
    "gains_from_bce",
    "headroom_table",
    "logits_at",
    "needed_depth_agreement",
    "oracle_depths",
    "per_sample_bce",
]
