"""Optuna studies: where they are stored, how they resume, how several workers share them.

Model tuning (`adaptive_loop.training.model_tuning`) and controller tuning
(`adaptive_loop.harness.controller_tuning`) both keep their studies through this module.

Storage (`open_storage`):
- default: a local SQLite file `sqlite:///<out>/study.db`;
- any SQLAlchemy URL Optuna accepts (`postgresql://user@host/db`, `mysql://...`), so several
  machines can work on one study;
- `journal:<path>`: Optuna's journal file (several local processes at once, no database).
A study is created with `load_if_exists=True`: running the same command again resumes it and
keeps every finished trial; it only runs the trials still missing from `--trials` (counted
over all workers). A trial that was running when its process died stays in the storage as
RUNNING and is not counted or used. Samplers are seeded (TPE, NSGA-II); a resumed study's
sampler is seeded with `seed + finished trials`, so a resumed run is itself reproducible.
"""

from __future__ import annotations

import os
import socket
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
