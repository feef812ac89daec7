"""Tuning a controller's hyperparameters with Optuna, on a validation trace only.

What is searched is the controller's own `search_space` classmethod (`controllers.base`);
the budget knob is never searched, calibration sets it.

The validation trace is split (seeded, by rows) into a *fit* part, on which each trial fits
the controller, and a *tune* part, on which it is calibrated and scored, so a learned
controller is never scored on the rows it was trained on. The test trace is not touched.

- Single objective (`tune_controller(..., budget=B)`): maximise AUC on the tune part with the
  knob calibrated to mean cost <= B there. The budget is a constraint: a trial whose cheapest
  setting still costs more than B reports `cost - B > 0` to the TPE sampler's
  `constraints_func` (and is never chosen as best).
- Multi-objective (`multi_objective=True`): NSGA-II on (AUC, mean FLOPs); each trial also
  draws a budget between the cost of depth 0 and depth K, so the study traces a Pareto front.

`refit(name, params, valid, budget)` then fits the chosen setting on the whole validation
trace and calibrates it. Studies are stored and resumed as described in
`adaptive_loop.studies`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import BudgetError, ConfigError
from adaptive_loop.metrics import auc
from adaptive_loop.studies import create_or_resume, open_storage, run_trials, storage_url, trials_table
from adaptive_loop.trace import DepthTrace
from controllers.base import Controller
from controllers.registry import controller_class, make_controller, tunable_class

SpaceFn = Callable[[Any, DepthTrace], dict[str, Any]]


def default_space(name: str, base: Mapping[str, Any]) -> SpaceFn:
    """The hyperparameter ranges a registered controller declares (`search_space` classmethod).

    Raises `ConfigError` naming the tunable controllers when `name` declares none.
    """
    cls = tunable_class(name)
    return lambda trial, trace: cls.search_space(trial, trace, base)


def split_trace(trace: DepthTrace, tune_fraction: float, seed: int) -> tuple[DepthTrace, DepthTrace]:
    """Seeded (fit part, tune part) row split of a validation trace."""
    if not 0.0 < tune_fraction < 1.0:
        raise ConfigError(f"tune_fraction must lie in (0, 1), got {tune_fraction}")
    order = np.random.default_rng(seed).permutation(trace.n_samples)
    n_tune = int(round(tune_fraction * trace.n_samples))
    return trace.subset(np.sort(order[n_tune:])), trace.subset(np.sort(order[:n_tune]))


def budget_at_depth(trace: DepthTrace, depth: float) -> float:
    """Mean cost of a fixed-depth prediction at a (fractional) depth: Entry + depth Loop + one Exit."""
    return float(CostModel.from_trace(trace).fixed_depth(depth))


@dataclass
class Scored:
    """A controller's AUC and mean cost on a trace after calibrating to a budget."""

    auc: float
    mean_cost: float
    knob: float
    violation: float  # mean cost - budget when even the cheapest setting is over budget, else <= 0


def calibrate_and_score(controller: Controller, trace: DepthTrace, budget: float) -> Scored:
    """Calibrate to `budget` on `trace` (or take the nearest feasible end) and score there."""
    lo, hi = controller.cost_range(trace)
    if budget < lo:
        cheap, _ = controller._ends(trace)
        controller.set_params(**{controller.budget_param: controller._cast_knob(cheap)})
    elif budget > hi:
        _, expensive = controller._ends(trace)
        controller.set_params(**{controller.budget_param: controller._cast_knob(expensive)})
    else:
        controller.calibrate(trace, budget)
    d = controller.decide(trace)
    return Scored(auc(trace.labels, d.logits(trace)), d.mean_cost, float(controller.knob), d.mean_cost - budget)


@dataclass
class ControllerTuneResult:
    """A finished (or resumed) controller study."""

    controller: str
    study_name: str
    storage: str
    multi_objective: bool
    budget: float | None
    base_params: dict[str, Any]
    best_params: dict[str, Any]
    best_value: float | None
    pareto: list[dict[str, Any]] = field(default_factory=list)
    chosen_budget: float | None = None  # the budget of the chosen setting (the Pareto pick's, multi-objective)
    n_trials: int = 0
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return dataclasses.asdict(self)


def tune_controller(
    name: str,
    valid: DepthTrace,
    *,
    budget: float | None = None,
    multi_objective: bool = False,
    n_trials: int = 20,
    base_params: Mapping[str, Any] | None = None,
    space: SpaceFn | None = None,
    storage: str | None = None,
    out_dir: str = ".",
    study_name: str | None = None,
    seed: int = 0,
    tune_fraction: float = 0.5,
    show_progress: bool = False,
) -> ControllerTuneResult:
    """Tune `name`'s hyperparameters on a validation trace (see the module docstring)."""
    import optuna

    controller_class(name)  # unknown names fail here, before a study is created
    base = dict(base_params or {})
    if not multi_objective and budget is None:
        raise ConfigError("single-objective tuning needs a budget (FLOPs/sample); or use multi_objective=True")
    fn = space or default_space(name, base)
    fit_part, tune_part = split_trace(valid, tune_fraction, seed)
    lo_cost, hi_cost = budget_at_depth(valid, 0), budget_at_depth(valid, valid.max_depth)
    study_name = study_name or f"{name}-{'pareto' if multi_objective else 'budget'}"
    attrs = {"controller": name, "base_params": {k: _plain(v) for k, v in base.items()},
             "budget": None if multi_objective else float(budget), "n_valid": valid.n_samples, "tune_fraction": tune_fraction}

    if multi_objective:
        directions = ["maximize", "minimize"]
        sampler_factory = lambda s: optuna.samplers.NSGAIISampler(seed=s, population_size=max(8, min(24, n_trials // 3)))  # noqa: E731
    else:
        directions = ["maximize"]
        sampler_factory = lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=min(8, max(3, n_trials // 3)))  # noqa: E731
    study = create_or_resume(open_storage(storage, out_dir), study_name, directions, sampler_factory, seed, attrs)

    def objective(trial):
        space_params = fn(trial, valid)
        # values the space fixes without asking the sampler (e.g. use_hidden=False on a trace
        # without summaries) are not in trial.params: keep them so the refit uses them too
        trial.set_user_attr("fixed_params", {k: _plain(v) for k, v in space_params.items() if k not in trial.params})
        params = {**base, **space_params}
        controller = make_controller(name, **params).fit(fit_part)
        if multi_objective:
            target = budget_at_depth(valid, trial.suggest_float("budget_depth", 0.0, float(valid.max_depth)))
        else:
            target = float(budget)
        scored = calibrate_and_score(controller, tune_part, target)
        trial.set_user_attr("mean_cost", scored.mean_cost)
        trial.set_user_attr("knob", scored.knob)
        violation = max(0.0, scored.violation) if not multi_objective else 0.0
        trial.set_user_attr("violation", violation)
        if not multi_objective:
            trial.set_constraint("budget", violation)  # feasible when <= 0; the TPE sampler uses it
        trial.set_user_attr("budget", target)
        if multi_objective:
            return scored.auc, scored.mean_cost
        return scored.auc

    run_trials(study, objective, n_trials, show_progress)
    return _result(study, name, study_name, storage_url(storage, out_dir), multi_objective, budget, base, lo_cost, hi_cost)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _result(study, name, study_name, url, multi, budget, base, lo_cost, hi_cost) -> ControllerTuneResult:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {study_name!r} has no completed trial (all failed); see the errors above")
    pareto: list[dict[str, Any]] = []
    best_params: dict[str, Any] = {}
    best_value = None
    if multi:
        for t in sorted(study.best_trials, key=lambda t: t.values[1]):
            pareto.append({"number": t.number, "auc": t.values[0], "mean_cost": t.values[1],
                           "budget": t.user_attrs.get("budget"), "params": dict(t.params)})
        # the Pareto point with the best AUC among those that cost no more than the midpoint budget
        mid = 0.5 * (lo_cost + hi_cost)
        pick = [p for p in pareto if p["mean_cost"] <= mid] or pareto
        chosen = max(pick, key=lambda p: p["auc"])
        fixed = study.trials[chosen["number"]].user_attrs.get("fixed_params", {})
        best_params = {**{k: v for k, v in chosen["params"].items() if k != "budget_depth"}, **fixed}
        best_value = chosen["auc"]
        chosen_budget = chosen["mean_cost"]
    else:
        feasible = [t for t in complete if t.user_attrs.get("violation", 0.0) <= 0.0]
        if not feasible:
            raise BudgetError(
                f"no trial of study {study_name!r} met the budget {budget:.6g} FLOPs/sample on the tune split; "
                f"raise the budget (every depth-0 prediction costs {lo_cost:.6g})"
            )
        best = max(feasible, key=lambda t: t.value)
        best_params, best_value = {**best.params, **best.user_attrs.get("fixed_params", {})}, float(best.value)
        chosen_budget = float(budget)
    return ControllerTuneResult(
        controller=name, study_name=study_name, storage=url, multi_objective=multi,
        budget=None if multi else float(budget), base_params={k: _plain(v) for k, v in base.items()},
        best_params=best_params, best_value=best_value, pareto=pareto, chosen_budget=chosen_budget, n_trials=len(complete),
        trials=trials_table(study),
    )


def refit(name: str, params: Mapping[str, Any], valid: DepthTrace, budget: float | None = None) -> Controller:
    """Fit `name` with `params` on the whole validation trace and calibrate it to `budget`.

    A budget below what the controller can reach raises `BudgetError`; one above its most
    expensive setting takes that setting.
    """
    clean = {k: v for k, v in params.items() if k != "budget_depth"}
    if isinstance(clean.get("features"), list):
        clean["features"] = tuple(clean["features"])
    controller = make_controller(name, **clean).fit(valid)
    if budget is not None:
        lo, hi = controller.cost_range(valid)
        controller.calibrate(valid, min(float(budget), hi))
    return controller
