"""The shared controller-comparison protocol: calibrate on valid, report on test."""

from __future__ import annotations

import dataclasses
import math

import pytest
from _trace_factory import make_trace

from adaptive_loop.cost import CostModel
from adaptive_loop.harness.comparison import ControllerSpec, compare_controllers


def test_spec_parsing() -> None:
    spec = ControllerSpec.parse("confidence:criterion=entropy,per_depth=true,threshold=0.5")
    assert spec.name == "confidence"
    assert spec.params == {"criterion": "entropy", "per_depth": True, "threshold": 0.5}
    assert spec.display.startswith("confidence(")
    with pytest.raises(ValueError, match="key=value"):
        ControllerSpec.parse("confidence:entropy")


def test_budgets_are_met_on_valid_and_infeasible_ones_are_reported() -> None:
    valid, test = make_trace(n=3000, seed=1, split="valid"), make_trace(n=3000, seed=2)
    specs = [ControllerSpec("confidence"), ControllerSpec("stability", {"patience": 2})]
    result = compare_controllers(valid, test, specs, budget_depths=(1.0, 3.0), n_bootstrap=50, curve_points=8,
                                 progress=False)
    assert len(result.results) == 4 and len(result.curves) == 2
    by_key = {(r.controller, r.budget_depth): r for r in result.results}
    conf = by_key[("confidence", 1.0)]
    assert conf.status == "ok"
    assert conf.budget_flops == pytest.approx(CostModel.from_trace(valid).fixed_depth(1))
    assert conf.mean_cost == pytest.approx(conf.budget_flops, rel=0.05)  # calibrated on valid, measured on test
    assert conf.diff_low <= conf.diff_vs_mixture <= conf.diff_high
    # patience 2 needs at least two loop steps, so a depth-1 budget cannot be met
    patient = by_key[("stability(patience=2)", 1.0)]
    assert patient.status != "ok" and "cheapest" in patient.status and math.isnan(patient.auc)
    assert "infeasible" in result.to_markdown()
    assert result.to_dict()["results"][0]["controller"] == "confidence"


def test_risk_controlled_knob_reports_the_realised_test_risk() -> None:
    valid, test = make_trace(n=4000, seed=3, split="valid"), make_trace(n=4000, seed=4)
    result = compare_controllers(valid, test, [ControllerSpec("confidence")], budget_depths=(1.0,), n_bootstrap=20,
                                 curve_points=5, progress=False, risk=(0.05, 0.2, 0.1))
    (risk,) = result.risk
    assert (risk.epsilon, risk.delta, risk.alpha) == (0.05, 0.2, 0.1)
    if risk.certified:
        assert risk.calibration_risk <= risk.delta  # Learn-then-Test only certifies below delta
    assert 0.0 <= risk.test_risk <= 1.0
    assert 0.0 < risk.test_mean_cost <= risk.full_depth_cost * 1.5
    assert "Learn-then-Test" in result.to_markdown()


def test_excess_headroom_adds_each_results_share_of_it() -> None:
    valid, test = make_trace(n=3000, seed=1, split="valid"), make_trace(n=3000, seed=2)
    spec = [ControllerSpec("confidence")]
    plain = compare_controllers(valid, test, spec, budget_depths=(1.0,), n_bootstrap=20, curve_points=5,
                                progress=False, risk=None)
    assert math.isnan(plain.captured_of_excess(plain.results[0]))
    assert "captured of excess" not in plain.to_markdown()

    excess = 0.5 * plain.headroom.gap  # half the oracle headroom is left over the null
    with_excess = compare_controllers(valid, test, spec, budget_depths=(1.0,), n_bootstrap=20, curve_points=5,
                                      progress=False, risk=None, excess=excess)
    (r,) = with_excess.results
    assert r.auc == plain.results[0].auc  # the excess changes what is reported, not what is measured
    assert with_excess.captured_of_excess(r) == pytest.approx((r.auc - r.frontier_auc) / excess)
    assert with_excess.captured_of_excess(r) == pytest.approx(2 * r.headroom_captured)
    row = with_excess.to_dict()["results"][0]
    assert row["captured_of_excess"] == pytest.approx(with_excess.captured_of_excess(r))
    assert with_excess.to_dict()["excess_headroom"] == excess
    assert "| captured of excess |" in with_excess.to_markdown()
    no_excess = dataclasses.replace(with_excess, excess=-0.001)  # the depths gave the oracle less than noise did
    assert math.isnan(no_excess.captured_of_excess(r)) and "- (excess <= 0)" in no_excess.to_markdown()
