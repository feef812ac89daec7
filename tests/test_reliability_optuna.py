"""Optuna studies under faults and concurrency, with real processes.

- A study whose process is killed (SIGKILL) in the middle of a trial resumes with every
  finished trial kept unchanged, the interrupted trial left uncounted, and no finished trial
  run twice.
- Two `adaptive-loop tune controller` processes work on one journal-file study at once and
  together finish the requested trials, each trial exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from _trace_factory import make_trace
from optuna.trial import TrialState

from adaptive_loop.studies import open_storage
from adaptive_loop.trace import save_trace

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")

# A worker that tunes one float with the project's resume logic; trial `HANG_AT` announces
# itself in a flag file and then hangs until it is killed.
WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import optuna
    from adaptive_loop.studies import create_or_resume, open_storage, run_trials

    url, n_trials, hang_at, flag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])

    def objective(trial):
        x = trial.suggest_float("x", -2.0, 2.0)
        if trial.number == hang_at:
            flag.write_text(str(trial.number))
            time.sleep(600)
        return (x - 0.5) ** 2

    study = create_or_resume(open_storage(url, "."), "killed", ["minimize"],
                             lambda s: optuna.samplers.TPESampler(seed=s), seed=0, attrs={"task": "x"})
    run_trials(study, objective, n_trials)
    """
)


def _run_worker(tmp_path: Path, url: str, n_trials: int, hang_at: int) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return subprocess.Popen([sys.executable, str(script), url, str(n_trials), str(hang_at), str(tmp_path / "flag")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(url: str, name: str, tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url, tmp_path)).get_trials()


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_study_killed_mid_trial_resumes_without_losing_or_repeating_trials(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'study.log'}"
    proc = _run_worker(tmp_path, url, n_trials=6, hang_at=3)
    deadline = time.monotonic() + 120
    while not (tmp_path / "flag").exists():
        assert proc.poll() is None, f"worker exited early: {proc.communicate()}"
        assert time.monotonic() < deadline, "trial 3 never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    before = _trials(url, "killed", tmp_path)
    assert [t.state for t in before] == [TrialState.COMPLETE] * 3 + [TrialState.RUNNING]
    kept = [(t.number, t.params, t.values) for t in before[:3]]

    resumed = _run_worker(tmp_path, url, n_trials=6, hang_at=-1)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    after = _trials(url, "killed", tmp_path)
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert [(t.number, t.params, t.values) for t in complete[:3]] == kept  # nothing finished was lost or changed
    assert len(complete) == 6  # the killed trial is not counted, and no trial ran beyond the request
    assert len({t.number for t in after}) == len(after) == 7  # every trial once: 6 finished + the killed one
    assert after[3].state == TrialState.RUNNING and not after[3].values  # the killed trial stays visible, never scored
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # first run and the resumed run


def test_two_cli_workers_share_one_journal_study(tmp_path: Path) -> None:
    trace = save_trace(make_trace(4000, max_depth=4, seed=31, split="valid"), tmp_path / "valid.parquet")
    journal = tmp_path / "shared.log"
    wanted = 20
    cmd = [sys.executable, "-m", "adaptive_loop.cli", "tune", "controller", "--trace", str(trace),
           "--controller", "exit_gate", "--param", "epochs=3", "--budget-depth", "1.5", "--trials", str(wanted),
           "--storage", f"journal:{journal}", "--study-name", "shared", "--no-progress"]
    workers = [subprocess.Popen(cmd + ["--out", str(tmp_path / f"out{i}")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, results):
        assert w.returncode == 0, err

    trials = _trials(f"journal:{journal}", "shared", tmp_path)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert wanted <= len(finished) <= wanted + 1  # one worker may finish the trial it was in
    assert all(t.state != TrialState.RUNNING for t in trials)
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.user_attrs["worker"] for t in finished}) == 2, "both processes should have run trials"
    for i in range(2):  # each worker wrote its own complete report of the shared study
        assert (tmp_path / f"out{i}" / "tune_report.json").is_file()
