"""Tuning LoopCTR's own training hyperparameters with Optuna (`adaptive-loop tune model`).

A search space is a list of `SearchParam`s, each a dotted run-config key (`train.lr`,
`model.tower_hidden`, ...) with a range or a list of choices, so any config key can be tuned
without code: the default space searches `model.train_loops` (L), `model.d_model`, `train.lr`
and `model.aux_weight`; the built-in `recipe` space (`configs/search_spaces/recipe.yaml`)
searches the training recipe (embedding L2, dropouts, learning rate, batch size, widths,
experts). The objective is the training monitor (`train.monitor`, e.g. AUC at L on
validation). Each trial trains in `<out>/trials/trial_<n>` and reports the monitor after every
epoch through the trainer's epoch callback, so a median pruner stops hopeless trials early.
Studies are stored and resumed as `adaptive_loop.studies` describes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adaptive_loop.config import apply_overrides, config_from_dict
from adaptive_loop.errors import ConfigError
from adaptive_loop.studies import create_or_resume, open_storage, run_trials, storage_url, trials_table
from adaptive_loop.training.early_stopping import Monitor
from adaptive_loop.training.trainer import train

SEARCH_SPACES = Path(__file__).resolve().parent.parent / "configs" / "search_spaces"


@dataclass(frozen=True)
class SearchParam:
    """One tuned config key: a numeric range (`low`..`high`, optionally `log`, `integer`) or `choices`.

    Choices that are lists (tower widths such as `[400, 400]`) are offered to Optuna as their
    YAML text, since Optuna's categorical values must be scalars; `apply_model_params` parses
    them back, so the study's parameters read like the config overrides they are.
    """

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if "." not in self.key:
            raise ConfigError(f"search space key {self.key!r} must be a dotted config key such as train.lr")
        if self.choices is not None:
            if not self.choices:
                raise ConfigError(f"search space key {self.key!r}: choices must not be empty")
            object.__setattr__(self, "choices", tuple(_optuna_choice(c) for c in self.choices))
        elif self.low is None or self.high is None or not self.low <= self.high:
            raise ConfigError(f"search space key {self.key!r} needs choices, or low <= high (got {self.low!r}, {self.high!r})")
        elif self.log and self.low <= 0:
            raise ConfigError(f"search space key {self.key!r}: a log range needs low > 0, got {self.low!r}")

    def suggest(self, trial) -> Any:
        """The trial's value for this key."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)


def _optuna_choice(value: Any) -> Any:
    """A choice as Optuna can store it: scalars as they are, lists and mappings as flow-style YAML text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip()


DEFAULT_PARAMS = (
    SearchParam("model.train_loops", 1, 4, integer=True),
    SearchParam("model.d_model", choices=(16, 32, 64)),
    SearchParam("train.lr", 3e-4, 1e-2, log=True),
    SearchParam("model.aux_weight", 1e-3, 0.1, log=True),
)


@dataclass
class ModelSearchSpace:
    """The tuned keys of `tune_model` (the default suits a CPU: L, width, learning rate, aux weight)."""

    params: tuple[SearchParam, ...] = DEFAULT_PARAMS

    def __post_init__(self) -> None:
        keys = [p.key for p in self.params]
        if not keys:
            raise ConfigError("a search space needs at least one parameter")
        if len(set(keys)) != len(keys):
            raise ConfigError(f"search space lists a key twice: {sorted(k for k in keys if keys.count(k) > 1)}")

    @classmethod
    def from_dict(cls, raw: Any, where: str = "search space") -> ModelSearchSpace:
        """A space from `{dotted.key: {low, high, log, integer} | {choices: [...]}}` (a YAML mapping)."""
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"{where} must be a non-empty mapping of dotted config keys to ranges or choices")
        allowed = {f.name for f in dataclasses.fields(SearchParam)} - {"key"}
        params = []
        for key, spec in raw.items():
            if not isinstance(spec, dict) or not spec.keys() <= allowed:
                raise ConfigError(f"{where}: {key!r} must map to some of {sorted(allowed)}, got {spec!r}")
            if "choices" in spec:
                spec = {**spec, "choices": tuple(spec["choices"])}
            params.append(SearchParam(str(key), **spec))
        return cls(tuple(params))

    @classmethod
    def load(cls, name_or_path: str | Path) -> ModelSearchSpace:
        """A space from a YAML file or the name of a built-in one (`configs/search_spaces/<name>.yaml`)."""
        path = Path(name_or_path)
        if not path.is_file():
            path = SEARCH_SPACES / f"{name_or_path}.yaml"
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in SEARCH_SPACES.glob("*.yaml")))
            raise ConfigError(f"search space {str(name_or_path)!r} is neither a file nor a built-in space ({names})")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"search space {path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(raw, where=f"search space {path}")


@dataclass
class ModelTuneResult:
    """A finished (or resumed) LoopCTR hyperparameter study."""

    study_name: str
    storage: str
    direction: str
    best_params: dict[str, Any]
    best_value: float
    best_run_dir: str
    n_finished: int
    n_pruned: int
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the result (best parameters, trials, storage)."""
        return dataclasses.asdict(self)

    def best_overrides(self) -> list[str]:
        """The best trial's parameters as `--set` overrides (`key=value`), ready for a run config."""
        return [f"{k}={v}" for k, v in self.best_params.items()]


def apply_model_params(config, params: dict[str, Any]):
    """A copy of a RunConfig with a trial's parameters (dotted config keys) applied.

    The number of attention heads is halved until it divides `model.d_model`, so a tuned
    width never makes an invalid config.
    """
    raw = apply_overrides(config.to_dict(), [f"{k}={v}" for k, v in params.items()])
    model = raw["model"]
    if "d_model" in model and "n_heads" in model:
        heads = int(model["n_heads"])
        while heads > 1 and int(model["d_model"]) % heads:
            heads //= 2
        model["n_heads"] = max(1, heads)
    raw["train"]["progress"] = False
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"trial parameters {params}: {exc}") from None


def tune_model(
    config, out_dir: str | Path, n_trials: int, storage: str | None = None, study_name: str = "loopctr",
    seed: int = 0, space: ModelSearchSpace | None = None, data=None, show_progress: bool = False, pruner=None,
) -> ModelTuneResult:
    """Tune LoopCTR's config keys in `space` on the validation monitor, with pruning.

    `pruner` defaults to a median pruner (after 2 finished trials, from the second epoch on).
    """
    import optuna

    space = space or ModelSearchSpace()
    out = Path(out_dir)
    apply_model_params(config, {})  # the base config itself must be valid
    Monitor.parse(config.train.monitor, max(config.model.train_loops, 1))  # validate the monitor text early
    maximise = config.train.monitor.strip().startswith(("auc", "mean_auc"))
    direction = "maximize" if maximise else "minimize"
    if data is None:
        from adaptive_loop.data.pipeline import prepare_data

        data = prepare_data(config.data, seed=config.seed, show_progress=False)
    url = storage_url(storage, out)
    study = create_or_resume(
        open_storage(storage, out), study_name, [direction],
        lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=4), seed,
        {"task": "loopctr", "dataset": config.data.dataset, "monitor": config.train.monitor},
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )

    def objective(trial) -> float:
        params = {p.key: p.suggest(trial) for p in space.params}
        cfg = apply_model_params(config, params)
        run_dir = out / "trials" / f"trial_{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))

        def report(epoch: int, record) -> None:
            trial.report(float(record.monitor), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

        result = train(cfg, run_dir, data=data, progress=False, epoch_callbacks=[report])
        return float(result.best_monitor)

    run_trials(study, objective, n_trials, show_progress)
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {study_name!r} has no completed trial yet (all pruned or failed); run more trials")
    best = study.best_trial
    return ModelTuneResult(
        study_name=study_name, storage=url, direction=direction, best_params=dict(best.params),
        best_value=float(best.value), best_run_dir=str(best.user_attrs.get("run_dir", "")),
        n_finished=len(complete), n_pruned=len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))),
        trials=trials_table(study),
    )
