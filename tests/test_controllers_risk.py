"""Learn-then-Test risk control: the guarantee holds on fresh splits."""

from __future__ import annotations

import numpy as np
import pytest
from _trace_factory import make_trace

from adaptive_loop.errors import ConfigError
from controllers import ConfidenceThreshold, StabilityPatience, risk_calibrate
from controllers.risk import binomial_p_value, disagreement, hoeffding_bentkus_p_value


@pytest.fixture(scope="module")
def population():
    return make_trace(120_000, max_depth=5, seed=99, hidden_dim=None)


def test_p_values():
    assert binomial_p_value(0, 100, 0.1) == pytest.approx(0.9**100)
    assert binomial_p_value(50, 100, 0.1) > 0.999
    hb = hoeffding_bentkus_p_value(2, 200, 0.1)
    assert binomial_p_value(2, 200, 0.1) <= hb <= 1.0


@pytest.mark.parametrize("method", ["binomial", "hoeffding_bentkus"])
def test_violation_rate_stays_below_delta_on_fresh_splits(population, method):
    epsilon, delta, alpha, repeats, n_cal = 0.05, 0.1, 0.1, 50, 1500
    rng = np.random.default_rng(0)
    failures, certified = 0, 0
    for _ in range(repeats):
        perm = rng.permutation(population.n_samples)
        cal, test = population.subset(perm[:n_cal]), population.subset(perm[n_cal:])
        c = ConfidenceThreshold().fit(cal)
        result = risk_calibrate(c, cal, epsilon, delta, alpha, method=method, n_points=30)
        assert c.threshold == result.knob
        check = result.check(c, test)
        certified += result.certified
        failures += not check.within_delta
    assert certified >= repeats * 0.9
    assert failures / repeats <= alpha + 0.1


def test_result_fields_and_aggressiveness(population):
    cal = population.subset(np.arange(3000))
    c = StabilityPatience().fit(cal)
    loose = risk_calibrate(c, cal, epsilon=0.05, delta=0.3, alpha=0.1)
    loose_cost = loose.calibration_mean_cost
    tight = risk_calibrate(c, cal, epsilon=0.05, delta=0.02, alpha=0.1)
    assert tight.calibration_mean_cost >= loose_cost
    assert tight.calibration_risk <= 0.02
    assert "0.02" in tight.guarantee and tight.to_dict()["guarantee"] == tight.guarantee
    assert tight.tested[0]["risk"] == 0.0  # the most conservative knob never stops early
    assert disagreement(c, cal, 0.05).dtype == bool
    with pytest.raises(ConfigError, match="delta"):
        risk_calibrate(c, cal, delta=1.5)
