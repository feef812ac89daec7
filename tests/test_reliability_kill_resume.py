"""A training run killed with SIGKILL and restarted with --resume ends where an uninterrupted run ends.

The kill is real: `adaptive-loop train` runs in a subprocess, the test waits for its first
checkpoint, then sends SIGKILL after a seeded random delay (so at a random optimiser step of
a later epoch, possibly inside a checkpoint write). Resuming restores weights, optimiser,
RNG state and early-stopping state from `checkpoints/last.pt`; the killed epoch restarts
from its beginning with the same (seed, epoch) batch order, so the final per-depth
metrics and weights equal those of an uninterrupted run.

The run uses the whole training recipe whose state must survive the kill: Adam with the
explicit embedding and dense L2 penalties, batch norm in the Exit tower (running
statistics are model buffers), and the learning rate cut on plateau (the cut rate lives in
the optimiser state, the count of cuts in the schedule state). `min_delta = 1` makes every
epoch after the first one an epoch without a gain, so the rate is cut at every epoch
boundary and a resumed run that lost the cut rate would diverge.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from adaptive_loop.config import load_config
from adaptive_loop.io import load_checkpoint
from adaptive_loop.training import train

EPOCHS = 6
OVERRIDES = [
    "data.options.n_rows=3000",
    "data.options.n_users=150",
    "data.options.n_items=80",
    f"train.epochs={EPOCHS}",
    "train.patience=100",
    "train.num_threads=1",
    "train.progress=false",
    "train.optimizer=adam",
    "train.embedding_l2=0.01",
    "train.dense_l2=0.0001",
    "train.lr_schedule=plateau",
    "train.lr_factor=0.5",
    "train.min_lr=0.0001",
    "train.min_delta=1.0",
    "model.batch_norm=true",
]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL needs a POSIX system")


def _command(config: Path, run_dir: Path, resume: bool) -> list[str]:
    args = [sys.executable, "-m", "adaptive_loop.cli", "train", "--config", str(config), "--run-dir", str(run_dir),
            "--no-progress"]
    for item in OVERRIDES:
        args += ["--set", item]
    return args + (["--resume"] if resume else [])


def _kill_after_first_checkpoint(config: Path, run_dir: Path, delay: float) -> int:
    """Start training, SIGKILL it `delay` seconds after checkpoints/last.pt first appears; epochs done then."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_command(config, run_dir, resume=False), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 180
    while not last.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within 180 s")
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is not None:
        pytest.fail(f"training finished within {delay:.2f} s of its first checkpoint; the kill would test nothing")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return int(load_checkpoint(last)["epochs_done"])  # loads: the checkpoint is never half-written


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path, tiny_config_path: Path) -> None:
    delay = random.Random(20260515).uniform(0.05, 1.2)
    killed_run = tmp_path / "killed"
    epochs_at_kill = _kill_after_first_checkpoint(tiny_config_path, killed_run, delay)
    assert 1 <= epochs_at_kill < EPOCHS
    json.loads((killed_run / "history.json").read_text())  # atomically written, so always parseable

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    resumed = subprocess.run(_command(tiny_config_path, killed_run, resume=True), capture_output=True, text=True,
                             timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not list(killed_run.rglob(".*.tmp"))  # temporaries of an interrupted write are cleaned up

    full = train(load_config(tiny_config_path, OVERRIDES), tmp_path / "uninterrupted")
    after_resume = load_checkpoint(killed_run / "checkpoints" / "last.pt")
    reference = load_checkpoint(tmp_path / "uninterrupted" / "checkpoints" / "last.pt")
    assert after_resume["epochs_done"] == reference["epochs_done"] == EPOCHS
    for got, want in zip(after_resume["history"], reference["history"], strict=True):
        assert got["valid_auc"] == want["valid_auc"] and got["valid_logloss"] == want["valid_logloss"]
        assert got["train_loss"] == want["train_loss"] and got["train_penalty"] == want["train_penalty"]
        assert got["lr"] == want["lr"]
    assert [r["lr"] for r in reference["history"]] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4, 1e-4])
    assert after_resume["schedule_state"] == reference["schedule_state"] == {"mode": "plateau", "cuts": EPOCHS - 1}
    for name, weights in reference["model_state"].items():
        np.testing.assert_array_equal(after_resume["model_state"][name].numpy(), weights.numpy(), err_msg=name)
    assert full.best_epoch == int(after_resume["best_epoch"])


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    from adaptive_loop.io import remove_stale_temporaries

    (tmp_path / "last.pt").write_bytes(b"complete")
    (tmp_path / ".last.pt.k3j2.tmp").write_bytes(b"half")  # what a kill inside atomic_path leaves
    (tmp_path / "notes.tmp").write_text("not ours")  # not an atomic_path temporary: kept
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".last.pt.k3j2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "notes.tmp"]
