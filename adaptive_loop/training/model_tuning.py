"""Tuning LoopCTR's own training hyperparameters with Optuna (`adaptive-loop tune model`).

`tune_model` searches `model.train_loops` (L), `model.d_model` (width), `train.lr` and
`model.aux_weight` with the training monitor (`train.monitor`, e.g. AUC at L on validation)
as the objective. Each trial trains in `<out>/trials/trial_<n>` and reports the monitor after
every epoch through the trainer's epoch callback, so a median pruner stops hopeless trials
early. Studies are stored and resumed as `adaptive_loop.studies` describes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_loop.errors import ConfigError
from adaptive_loop.model import config_from_dict
from adaptive_loop.studies import create_or_resume, open_storage, run_trials, storage_url, trials_table
from adaptive_loop.training.early_stopping import Monitor
from adaptive_loop.training.trainer import train


@dataclass
class ModelSearchSpace:
    """Ranges for `tune_model` (the defaults suit a CPU)."""

    train_loops: tuple[int, int] = (1, 4)
    d_model: tuple[int, ...] = (16, 32, 64)
    lr: tuple[float, float] = (3e-4, 1e-2)
    aux_weight: tuple[float, float] = (1e-3, 0.1)


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


def apply_model_params(config, params: dict[str, Any]):
    """A copy of a RunConfig with a trial's L, width, learning rate and aux weight (a LoopCTR config)."""
    model = dataclasses.asdict(config.model)
    d = int(params["d_model"])
    heads = model["n_heads"]
    while d % heads:
        heads //= 2
    model.update(train_loops=int(params["train_loops"]), d_model=d, n_heads=max(1, heads), aux_weight=float(params["aux_weight"]))
    train = dataclasses.replace(config.train, lr=float(params["lr"]), progress=False)
    return dataclasses.replace(config, model=config_from_dict(model), train=train)


def tune_model(
    config, out_dir: str | Path, n_trials: int, storage: str | None = None, study_name: str = "loopctr",
    seed: int = 0, space: ModelSearchSpace | None = None, data=None, show_progress: bool = False, pruner=None,
) -> ModelTuneResult:
    """Tune L, width, learning rate and aux weight of LoopCTR on the validation monitor, with pruning.

    `pruner` defaults to a median pruner (after 2 finished trials, from the second epoch on).
    """
    import optuna

    space = space or ModelSearchSpace()
    out = Path(out_dir)
    Monitor.parse(config.train.monitor, max(space.train_loops[0], 1))  # validate the monitor text early
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
        params = {
            "train_loops": trial.suggest_int("train_loops", *space.train_loops),
            "d_model": trial.suggest_categorical("d_model", list(space.d_model)),
            "lr": trial.suggest_float("lr", *space.lr, log=True),
            "aux_weight": trial.suggest_float("aux_weight", *space.aux_weight, log=True),
        }
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
