"""Multi-process training: torchrun with 2 CPU processes (gloo) equals single-process training.

The global batch order is the single-process one, each rank trains on its slice of every
batch, the loss is scaled so DDP's gradient average is the global-batch gradient, and the
MoE balance statistics are summed over ranks. The batch size and row count are chosen so
that every batch splits unevenly (an odd size) and the last batch has a single row, so
rank 1 trains on an empty slice in that step. Tolerance: weights agree to 1e-5 (summing
gradients across processes changes only the floating-point summation order).

The learning rate is 1e-4, not the config's 1e-3: AdamW moves a weight whose gradient is
near its eps (1e-8) by about lr x (rounding noise / eps), and ReLU and top-k kinks can then
amplify that difference. With the tiny config at lr 1e-3 one such weight (an attention
expert's gradient of ~3e-10 in the first step) grew to 1e-3 after 12 steps, as large as
the effect of a real bug (per-rank MoE balance statistics: 3e-3). At lr 1e-4, measured: 1e-6
for correct training, 5e-5 with per-rank balance statistics.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptive_loop.config import load_config
from adaptive_loop.distributed import ShardedBatchSampler, shard_bounds
from adaptive_loop.io import load_checkpoint
from adaptive_loop.training import train

# 1495 rows -> 1196 training rows = 5 x 239 + 1: odd batches and a 1-row last batch
OVERRIDES = [
    "data.options.n_rows=1495",
    "data.options.n_users=120",
    "data.options.n_items=60",
    "train.epochs=2",
    "train.batch_size=239",
    "train.lr=0.0001",  # see the module docstring
    "train.num_threads=1",
    "train.progress=false",
]

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available in this PyTorch build",
)


def _torchrun(run_dir: Path, config: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "adaptive_loop.cli", "train", "--config", str(config), "--run-dir", str(run_dir), "--no-progress"]
    for item in OVERRIDES:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)


def test_two_processes_match_one_process(tmp_path: Path, tiny_config_path: Path) -> None:
    done = _torchrun(tmp_path / "ddp", tiny_config_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # only rank 0 prints

    config = load_config(tiny_config_path, OVERRIDES)
    single = train(config, tmp_path / "single")

    ddp_ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    one_ckpt = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    assert ddp_ckpt["epochs_done"] == one_ckpt["epochs_done"] == 2
    worst = max(float((ddp_ckpt["model_state"][k] - v).abs().max()) for k, v in one_ckpt["model_state"].items())
    assert worst < 1e-5, f"weights differ by {worst:g}"
    for ddp_epoch, one_epoch in zip(ddp_ckpt["history"], one_ckpt["history"]):
        np.testing.assert_allclose(ddp_epoch["valid_auc"], one_epoch["valid_auc"], atol=1e-5)
        np.testing.assert_allclose(ddp_epoch["valid_logloss"], one_epoch["valid_logloss"], atol=1e-5)
        assert ddp_epoch["train_loss"] == pytest.approx(one_epoch["train_loss"], abs=1e-5)
        assert ddp_epoch["steps"] == one_epoch["steps"] == 6
    assert len(single.history) == 2
    # rank 0 alone wrote the run directory: the usual files, no temporaries left behind
    names = sorted(p.name for p in (tmp_path / "ddp").rglob("*") if p.is_file())
    assert names == ["best.pt", "config.yaml", "encoder.json", "history.json", "last.pt", "spec.json"]


def test_sharded_sampler_splits_every_global_batch() -> None:
    whole = ShardedBatchSampler(1196, 239, seed=3).epoch(0)
    parts = [ShardedBatchSampler(1196, 239, seed=3, rank=r, world_size=2).epoch(0) for r in range(2)]
    assert len(whole) == len(parts[0]) == len(parts[1]) == 6
    for step, (rows, n) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([parts[0][step][0], parts[1][step][0]]), rows)
        assert parts[0][step][1] == parts[1][step][1] == n
    assert len(parts[1][-1][0]) == 0  # the 1-row last batch leaves rank 1 empty
    assert [shard_bounds(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
