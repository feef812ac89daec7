"""Summary of an `adaptive-loop tune model` study, readable at any point of it (it may still be running).

`adaptive-loop tune model` writes its report only when the study reaches its trial count; a
study of 40 twenty-epoch trials outlives a working session. This script reads the study's
storage (read only: it never creates, changes or runs a trial) and writes

- `<out>.json`: the study name, direction, the best finished trial and every trial
  (number, state, objective or, for pruned / interrupted trials, the best value reported
  so far, epochs reported, whether it is the base config's trial, its parameters);
- `<out>.md`: the same as a table, with the command that created (and resumes) the study.

    python benchmarks/study_summary.py --storage runs/tune/movielens_100k_L0/study.db \\
        --study-name loopctr_recipe_movielens_100k_L0 --out benchmarks/results/tune_model/movielens_100k_L0 \\
        --command "adaptive-loop tune model --config movielens_100k ..."
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adaptive_loop.errors import ConfigError
from adaptive_loop.io import write_json, write_text
from adaptive_loop.studies import open_storage
from adaptive_loop.training.model_tuning import BASE_TRIAL


@dataclass
class TrialSummary:
    """One trial as the summary shows it."""

    number: int
    state: str
    value: float | None  # the objective of a finished trial, else the best value it reported
    epochs: int  # epochs it reported (intermediate values)
    base_config: bool
    params: dict[str, Any]


@dataclass
class StudySummary:
    """A study's trials and its best finished trial."""

    study: str
    direction: str
    best_trial: int | None
    best_value: float | None
    trials: list[TrialSummary]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _existing_storage(storage: str):
    """The Optuna storage of `storage`, in any form `--storage` of `adaptive-loop tune` takes (a database
    URL, `journal:<file>`) or a SQLite file path; a file that does not exist is an error, never created."""
    if "://" not in storage and not storage.startswith("journal:"):
        storage = f"sqlite:///{Path(storage).resolve()}"
    for prefix in ("sqlite:///", "journal:"):
        if storage.startswith(prefix) and not Path(storage[len(prefix):]).is_file():
            raise ConfigError(f"study storage {storage!r}: no such file")
    return open_storage(storage, ".")


def summarize(storage: str, study_name: str) -> StudySummary:
    """Read `study_name` from `storage` (see `_existing_storage`) without changing it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = _existing_storage(storage)
    names = optuna.get_all_study_names(opened)
    if study_name not in names:
        raise ConfigError(f"no study {study_name!r} in {storage}; studies there: {', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=study_name, storage=opened)
    maximise = study.direction == optuna.study.StudyDirection.MAXIMIZE
    pick = max if maximise else min
    trials = []
    for t in study.get_trials(deepcopy=False):
        reported = list(t.intermediate_values.values())
        value = t.value if t.value is not None else (pick(reported) if reported else None)
        trials.append(TrialSummary(
            number=t.number, state=t.state.name, value=None if value is None else float(value),
            epochs=len(reported), base_config=bool(t.user_attrs.get(BASE_TRIAL)), params=dict(t.params),
        ))
    complete = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
    best = pick(complete, key=lambda t: t.value) if complete else None
    return StudySummary(
        study=study_name, direction="maximize" if maximise else "minimize",
        best_trial=None if best is None else best.number, best_value=None if best is None else best.value,
        trials=trials,
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(summary: StudySummary, command: str | None) -> str:
    """The summary as a markdown page: command, table of trials, best trial."""
    keys = sorted({k for t in summary.trials for k in t.params})
    finished = sum(t.state == "COMPLETE" for t in summary.trials)
    pruned = sum(t.state == "PRUNED" for t in summary.trials)
    lines = [f"# Study `{summary.study}`", ""]
    if command:
        lines += ["Created and resumed by (the same command continues the study):", "", f"    {command}", ""]
    lines += [
        f"{len(summary.trials)} trials: {finished} finished, {pruned} pruned, "
        f"{len(summary.trials) - finished - pruned} other (running or interrupted; not counted). "
        f"Objective: {summary.direction}; for pruned and interrupted trials the value is the best one reported.",
        "",
        "| trial | state | value | epochs | base | " + " | ".join(f"`{k}`" for k in keys) + " |",
        "|---" * (5 + len(keys)) + "|",
    ]
    for t in summary.trials:
        value = "-" if t.value is None else f"{t.value:.5f}"
        params = " | ".join(_cell(t.params.get(k, "")) for k in keys)
        lines.append(f"| {t.number} | {t.state} | {value} | {t.epochs} | {'yes' if t.base_config else ''} | {params} |")
    lines.append("")
    if summary.best_trial is None:
        lines.append("No finished trial yet.")
    else:
        best = next(t for t in summary.trials if t.number == summary.best_trial)
        who = "the base config's own trial" if best.base_config else "a sampled setting"
        lines.append(f"Best finished trial: {best.number} ({who}), value {best.value:.5f}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="database URL or path to the study's SQLite file")
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--out", required=True, type=Path, help="output prefix: writes <out>.json and <out>.md")
    parser.add_argument("--command", help="the command that created the study (shown in the markdown)")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.storage, args.study_name)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    json_path, md_path = Path(f"{args.out}.json"), Path(f"{args.out}.md")
    write_json(json_path, summary.to_dict())
    write_text(md_path, to_markdown(summary, args.command))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
