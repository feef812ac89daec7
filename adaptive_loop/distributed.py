"""Multi-process training on existing engines: torchrun + DistributedDataParallel.

Launch with PyTorch's own launcher, which sets `RANK`, `WORLD_SIZE` and `LOCAL_RANK`:

    torchrun --standalone --nproc_per_node=2 -m adaptive_loop.cli train --config tiny --run-dir runs/ddp

Each process prepares the same data (seeded, so identical), takes its share of every
global batch (`shard_bounds`), and DDP averages gradients. The backend is NCCL when the
training device is CUDA (one GPU per process, `cuda:LOCAL_RANK`) and gloo on CPU. Only
rank 0 writes files; every rank computes the same validation metrics, so early stopping
decides the same way everywhere.

Why the result equals single-process training (up to floating-point summation order):
the trainer scales each rank's summed loss so that DDP's gradient *average* equals the
gradient of the *global* batch mean, and `global_router_statistics` makes the MoE
load-balancing statistics global (see `adaptive_loop.model.moe`). Measured on the tiny
config (2 processes, 2 epochs, 10 steps): weights agree with a single process to 7e-7 and
validation AUCs to all printed digits; with per-rank balance statistics instead they
differed by 4e-4 and the AUC in the third decimal. The test allows 1e-5. Dropout (off by
default) draws different masks in different process layouts, so with dropout > 0 runs
agree only statistically; streamed data (each rank reads its own row groups) also gives
other batches than a single process, by design.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from adaptive_loop.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a multi-process run (world_size 1 = a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and prints."""
        return self.rank == 0


SINGLE = DistContext()


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the environment torchrun sets; (0, 1, 0) without it."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError(
            "RANK / WORLD_SIZE / LOCAL_RANK must be integers (they are set by torchrun; unset them for a "
            "single-process run)"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"invalid distributed environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def launched_distributed() -> bool:
    """True when started by torchrun with more than one process."""
    return env_world()[1] > 1


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device, bool]:
    """Join the process group torchrun describes; returns (context, this process's device, created).

    With CUDA each process uses `cuda:LOCAL_RANK` and NCCL; on CPU, gloo. `created` says
    whether this call created the group (and so should destroy it). A single process gets
    `SINGLE` and its device unchanged.
    """
    import torch.distributed as dist

    rank, world, local = env_world()
    if world == 1:
        return SINGLE, device, False
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run a single process instead")
    backend, device = backend_for(device, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        created = True
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend), device, created


def backend_for(device: torch.device, local_rank: int) -> tuple[str, torch.device]:
    """(backend, this process's device): NCCL on `cuda:LOCAL_RANK` for a CUDA run, gloo on the CPU."""
    if device.type != "cuda":
        return "gloo", device
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
            f"use --nproc_per_node <= the number of GPUs"
        )
    return "nccl", torch.device("cuda", local_rank)


def shutdown(created: bool) -> None:
    """Destroy the process group if `init_distributed` created it."""
    import torch.distributed as dist

    if created and dist.is_initialized():
        dist.destroy_process_group()


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of rank's contiguous share of n items; shares differ in size by at most one.

    Contiguous shares concatenated in rank order give back the original order, which is
    what gathering validation predictions needs.
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class ShardedBatchSampler:
    """The seeded global batch order of an epoch, cut into this rank's share of every batch.

    Global batch `s` is `order[s*B:(s+1)*B]` with `order` the permutation seeded by
    (seed, epoch): exactly the batches of a single-process run. Rank r trains on the
    contiguous slice `shard_bounds(len(batch), r, W)` of each. Every rank iterates the same
    number of steps (a rank may get an empty slice of a tiny last batch; its loss weight
    is then 0).
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 max_steps: int = 0) -> None:
        if batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {batch_size}")
        self.n_rows = int(n_rows)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        steps = -(-self.n_rows // self.batch_size)
        self.steps = min(steps, max_steps) if max_steps > 0 else steps

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int) -> list[tuple[np.ndarray, int]]:
        """[(this rank's row indices, global batch size)] for every step of `epoch`."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
        out = []
        for step in range(self.steps):
            rows = order[step * self.batch_size : (step + 1) * self.batch_size]
            start, end = shard_bounds(len(rows), self.rank, self.world_size)
            out.append((rows[start:end], len(rows)))
        return out


# --------------------------------------------------------------------------- collectives
def all_reduce_sum(values: np.ndarray, ctx: DistContext, device: torch.device | str = "cpu") -> np.ndarray:
    """Element-wise sum of a float array over processes (a copy of it for a single process).

    `device` must be the process's training device: NCCL reduces CUDA tensors only.
    """
    arr = np.asarray(values, dtype=np.float64)
    if not ctx.enabled:
        return arr.copy()
    import torch.distributed as dist

    tensor = torch.from_numpy(arr.copy()).to(device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def all_reduce_max(value: float, ctx: DistContext, device: torch.device | str = "cpu") -> float:
    """Maximum of a scalar over processes."""
    if not ctx.enabled:
        return float(value)
    import torch.distributed as dist

    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def all_gather_rows(array: np.ndarray, ctx: DistContext, device: torch.device | str = "cpu") -> np.ndarray:
    """Concatenate every process's rows (first axis; sizes may differ) in rank order."""
    if not ctx.enabled:
        return array
    import torch.distributed as dist

    local = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.int64, device=device))
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.zeros_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0).cpu().numpy()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for a single process)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


class _SumOverProcesses(torch.autograd.Function):
    """y = sum over processes of x; the backward sums the incoming gradients the same way."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        out = grad.clone()
        dist.all_reduce(out)
        return out


def differentiable_sum(ctx: DistContext) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """An all-reduce(SUM) whose backward also sums gradients over processes (None if single).

    Used for statistics that must be global (the MoE balance statistics). Every process
    computes the same loss L(S) of the global sum S; its backward hands each process
    W * dL/dS, and DDP's averaging over the W processes leaves exactly dL/dtheta.
    """
    if not ctx.enabled:
        return None
    return _SumOverProcesses.apply
