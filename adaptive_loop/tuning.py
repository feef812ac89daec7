"""Optuna studies: where they are stored, and tuning LoopCTR's own training hyperparameters.

Storage (`open_storage`), shared with controller tuning (`controllers.tuning`):
- default: a local SQLite file `sqlite:///<out>/study.db`;
- any SQLAlchemy URL Optuna accepts (`postgresql://user@host/db`, `mysql://...`), so several
  machines can work on one study;
- `journal:<path>`: Optuna's journal file (several local processes at once, no database).
A study is created with `load_if_exists=True`: running the same command again resumes it and
keeps every finished trial; it only runs the trials still missing from `--trials` (counted
over all workers). A trial that was running when its process died stays in the storage as
RUNNING and is not counted or used. Samplers are seeded (TPE, NSGA-II); a resumed study's
sampler is seeded with `seed + finished trials`, so a resumed run is itself reproducible.

Model tuning (`tune_model`) searches `model.train_loops` (L), `model.d_model` (width),
`train.lr` and `model.aux_weight` with the training monitor (`train.monitor`, e.g. AUC at
L on validation) as the objective. Each trial trains in `<out>/trials/trial_<n>` and reports
the monitor after every epoch through the trainer's epoch callback, so a median pruner stops
hopeless trials early.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from adaptive_loop.errors import ConfigError

STUDY_FILE = "study.db"


def storage_url(storage: str | None, out_dir: str | Path) -> str:
    """The storage string used: `storage` itself, or the default SQLite file in `out_dir`."""
    if storage:
        return storage
    return f"sqlite:///{(Path(out_dir) / STUDY_FILE).resolve()}"


def open_storage(storage: str | None, out_dir: str | Path):
    """An Optuna storage for a URL (see the module docstring); unopenable ones raise `ConfigError`."""
    import optuna

    url = storage_url(storage, out_dir)
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        if not str(path):
            raise ConfigError("--storage journal:<path> needs a file path after 'journal:'")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot open the Optuna journal file {path}: {exc}") from None
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in url:
        raise ConfigError(
            f"--storage {url!r} is not a database URL (sqlite:///file.db, postgresql://user@host/db) or journal:<path>"
        )
    try:
        return optuna.storages.RDBStorage(url)
    except ImportError as exc:
        raise ConfigError(f"cannot open Optuna storage {url!r}: a database driver is missing ({exc}); install it with pip") from None
    except Exception as exc:  # sqlalchemy raises many types (ArgumentError, OperationalError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot open Optuna storage {url!r}: {first}") from None


def finished_trials(study) -> int:
    """Trials that completed or were pruned (what counts toward --trials)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def create_or_resume(
    storage, study_name: str, directions: list[str], sampler_factory: Callable[[int], Any], seed: int,
    attrs: dict[str, Any], pruner: Any = None,
):
    """Create the study, or load it and check it was made for the same task (`attrs`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        existing = None
    done = 0
    if existing is not None:
        have = [d.name.lower() for d in existing.directions]
        want = [d.lower() for d in directions]
        if have != want:
            raise ConfigError(f"study {study_name!r} exists with directions {have}, not {want}; use another --study-name")
        for key, value in attrs.items():
            old = existing.user_attrs.get(key)
            if old is not None and old != value:
                raise ConfigError(
                    f"study {study_name!r} was created for {key}={old!r}, not {value!r}; use another --study-name or the same settings"
                )
        done = finished_trials(existing)
    sampler = sampler_factory(seed + done)
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler, pruner=pruner,
                                directions=directions, load_if_exists=True)
    for key, value in attrs.items():
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    return study


def run_trials(study, objective: Callable, n_trials: int, show_progress: bool = False) -> int:
    """Run until `n_trials` finished trials exist in the study (over all workers); returns how many ran here.

    Each trial records the worker (`host:pid`) that ran it as the user attribute `worker`.
    With several workers the study can end with up to (workers - 1) extra finished trials:
    a worker already inside a trial finishes it when another one reaches the count.
    """
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if n_trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {n_trials}")
    missing = n_trials - finished_trials(study)
    if missing <= 0:
        return 0
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def tagged(trial):  # which process ran a trial, so a shared study's history can be audited
        trial.set_user_attr("worker", worker)
        return objective(trial)

    before = len(study.get_trials(deepcopy=False))
    study.optimize(
        tagged, n_trials=missing, show_progress_bar=show_progress, gc_after_trial=False,
        callbacks=[MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
        catch=(FloatingPointError,),
    )
    return len(study.get_trials(deepcopy=False)) - before


def trials_table(study) -> list[dict[str, Any]]:
    """Every trial as a plain dict (number, state, values, params, user attributes)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "number": t.number, "state": t.state.name, "values": t.values, "params": dict(t.params),
            "user_attrs": dict(t.user_attrs),
            "seconds": None if t.duration is None else t.duration.total_seconds(),
        })
    return rows


# --------------------------------------------------------------------------- LoopCTR hyperparameters
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
    """A copy of a RunConfig with a trial's L, width, learning rate and aux weight."""
    from adaptive_loop.model.config import ModelConfig

    model = dataclasses.asdict(config.model)
    d = int(params["d_model"])
    heads = model["n_heads"]
    while d % heads:
        heads //= 2
    model.update(train_loops=int(params["train_loops"]), d_model=d, n_heads=max(1, heads), aux_weight=float(params["aux_weight"]))
    train = dataclasses.replace(config.train, lr=float(params["lr"]), progress=False)
    return dataclasses.replace(config, model=ModelConfig.from_dict(model), train=train)


def tune_model(
    config, out_dir: str | Path, n_trials: int, storage: str | None = None, study_name: str = "loopctr",
    seed: int = 0, space: ModelSearchSpace | None = None, data=None, show_progress: bool = False, pruner=None,
) -> ModelTuneResult:
    """Tune L, width, learning rate and aux weight of LoopCTR on the validation monitor, with pruning.

    `pruner` defaults to a median pruner (after 2 finished trials, from the second epoch on).
    """
    import optuna

    from adaptive_loop.train import Monitor, train

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
