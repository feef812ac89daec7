"""The learned-controller benchmark's target check, against the oracle headroom and the excess."""

from __future__ import annotations

from _bench_scripts import load_benchmark


def _row(low: float, captured_mixture: float, of_excess: float | None) -> dict:
    row = {"feasible": True, "bootstrap_vs_mixture_frontier": {"estimate": low + 1e-4, "low": low, "high": low + 2e-4},
           "headroom_captured": {"captured_mixture": captured_mixture}}
    if of_excess is not None:
        row["captured_of_excess"] = of_excess
    return row


def test_target_is_checked_against_the_excess_when_it_is_known() -> None:
    bench = load_benchmark("bench_learned_controllers")
    result = {"excess_headroom": 0.001, "controllers": {
        "small_share": {"at_budget": {"depth1": _row(1e-5, 0.10, 0.40)}},  # 10% of the oracle, 40% of the excess
        "not_significant": {"at_budget": {"depth1": _row(-1e-5, 0.50, 2.0)}},
        "infeasible": {"at_budget": {"depth1": {"feasible": False, "reason": "too cheap"}}},
    }}
    target = bench.target_check(result)
    assert not target["met"]
    assert target["met_of_excess"]
    assert [w["controller"] for w in target["winners_of_excess"]] == ["small_share"]

    without = {"controllers": {"a": {"at_budget": {"depth1": _row(1e-5, 0.30, None)}}}}
    target = bench.target_check(without)
    assert target["met"] and "met_of_excess" not in target
