"""Every controller: offline == online, scikit-learn conventions, registry, fit errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from _trace_factory import make_trace
from sklearn.base import clone

from adaptive_loop.errors import ConfigError, NotFittedError, TraceError
from adaptive_loop.harness.online import simulate_online
from controllers import (
    ConfidenceThreshold,
    FixedDepth,
    StabilityPatience,
    StepView,
    available_controllers,
    make_controller,
)

CASES = [
    ("fixed", {"depth": 2}),
    ("fixed", {"depth": 0}),
    ("confidence", {"threshold": 0.5}),
    ("confidence", {"threshold": 0.3, "criterion": "entropy"}),
    ("confidence", {"threshold": 0.4, "per_depth": True}),
    ("confidence", {"threshold": 0.7, "criterion": "entropy", "per_depth": True}),
    ("stability", {"delta": 0.02}),
    ("stability", {"delta": 0.05, "patience": 2}),
    ("stability", {"delta": 0.002, "criterion": "kl"}),
    ("stability", {"delta": 0.1, "patience": 3, "criterion": "delta_logit"}),
]


@pytest.fixture(scope="module")
def trace():
    return make_trace(3000, max_depth=5, seed=21)


@pytest.mark.parametrize("name,params", CASES)
def test_offline_equals_online(trace, name, params):
    c = make_controller(name, **params).fit(trace)
    offline = c.decide(trace).depth
    np.testing.assert_array_equal(simulate_online(c, trace), offline)
    if c.kind == "upfront":
        np.testing.assert_array_equal(simulate_online(c, trace, upfront=False), offline)
    # also at calibrated knobs, where thresholds sit exactly on data values
    for budget in np.linspace(*c.cost_range(trace), 5)[1:-1]:
        c.calibrate(trace, float(budget))
        np.testing.assert_array_equal(simulate_online(c, trace), c.decide(trace).depth)


@pytest.mark.parametrize("name,params", CASES)
def test_sklearn_conventions(trace, name, params):
    c = make_controller(name, **params)
    with pytest.raises(NotFittedError, match="fit"):
        c.decide(trace)
    with pytest.raises(NotFittedError):
        c.start(10)
    with pytest.raises(NotFittedError):
        c.calibrate(trace, 1500.0)
    assert c.fit(trace) is c
    assert c.get_params() == {**make_controller(name).get_params(), **params}
    twin = clone(c)
    assert twin.get_params() == c.get_params()
    with pytest.raises(NotFittedError):
        twin.decide(trace)
    knob = c.budget_param
    assert knob in c.get_params()
    c.set_params(**{knob: c.get_params()[knob]})
    assert all(k.endswith("_") for k in vars(c) if not k.startswith("_") and k not in c.get_params())
    c.decide(trace)
    restored = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(restored.decide(trace).depth, c.decide(trace).depth)


def test_set_params_changes_decisions(trace):
    c = ConfidenceThreshold(threshold=0.2).fit(trace)
    cheap = c.decide(trace).mean_cost
    c.set_params(threshold=0.9)
    assert c.decide(trace).mean_cost > cheap


def test_registry():
    assert {"fixed", "confidence", "stability"} <= set(available_controllers())
    assert isinstance(make_controller("stability", patience=2), StabilityPatience)
    with pytest.raises(ConfigError, match="available"):
        make_controller("nope")
    with pytest.raises(ConfigError, match="accepts"):
        make_controller("fixed", threshold=0.3)


def test_invalid_params_and_traces(trace):
    with pytest.raises(ConfigError, match="criterion"):
        ConfidenceThreshold(criterion="softmax").fit(trace)
    with pytest.raises(ConfigError, match="patience"):
        StabilityPatience(patience=0).fit(trace)
    with pytest.raises(ConfigError, match="exceeds"):
        FixedDepth(depth=9).fit(trace).decide(trace)
    c = ConfidenceThreshold().fit(trace)
    with pytest.raises(TraceError, match="K=5"):
        c.decide(trace.truncate_depth(3))


def test_step_view_accepts_tensor_like_objects(trace):
    class FakeTensor:
        def __init__(self, a):
            self.a = np.asarray(a)

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    c = ConfidenceThreshold(threshold=0.5).fit(trace)
    state = c.start(4)
    z = np.array([3.0, 0.1, -4.0, 0.0], dtype=np.float32)
    stop = c.should_stop(StepView(depth=0, logits=FakeTensor(z), row_index=FakeTensor(np.arange(4))), state)
    assert stop.tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="logits"):
        StepView(depth=0, logits=z[:2], row_index=np.arange(4))


def test_optuna_can_tune_the_knob(trace):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    c = ConfidenceThreshold().fit(trace)

    def objective(trial):
        c.set_params(threshold=trial.suggest_float("threshold", 0.0, 1.0))
        return c.decide(trace).mean_cost

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=5)
    assert study.best_value == min(t.value for t in study.trials)


def test_the_documented_way_of_writing_a_controller(trace):
    from controllers.incremental import IncrementalController

    class LogitMagnitude(IncrementalController):
        name = "logit_magnitude_doc_example"
        budget_param = "threshold"
        stop_if = "ge"

        def __init__(self, threshold: float = 2.0) -> None:
            self.threshold = threshold

        @property
        def flops_per_step(self) -> float:
            return 2.0

        def _score(self, step, state):
            return np.abs(np.asarray(step.logits, dtype=np.float64))

    c = LogitMagnitude().fit(trace)
    np.testing.assert_array_equal(simulate_online(c, trace), c.decide(trace).depth)
    lo, hi = c.cost_range(trace)
    c.calibrate(trace, 0.5 * (lo + hi))
    assert c.decide(trace).mean_cost <= 0.5 * (lo + hi)
    assert clone(c).get_params() == {"threshold": c.threshold}


def test_every_controller_class_registers_itself_and_declares_its_own_search_space():
    """No list to edit: the registry finds every named controller class of the package."""
    import importlib
    import inspect
    import pkgutil

    import controllers
    from controllers.base import Controller
    from controllers.registry import tunable_controllers

    defined = {}
    for module in pkgutil.walk_packages(controllers.__path__, "controllers."):
        for _, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if issubclass(cls, Controller) and cls.__module__ == module.name and cls.__dict__.get("name"):
                defined[cls.name] = cls
    assert set(defined) <= set(available_controllers())
    assert {"fixed", "confidence", "stability", "act", "exit_gate", "lgbm_depth", "allocator"} <= set(defined)
    # each of these declares `search_space` on its own class; fixed depth has nothing to tune
    assert tunable_controllers() == ["act", "allocator", "confidence", "exit_gate", "lgbm_depth", "stability"]
    assert all("search_space" in defined[name].__dict__ for name in tunable_controllers())

