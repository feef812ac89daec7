"""Training throughput of LoopCTR against what this CPU's dense matmul reaches, and a step profile.

The measured code is the real trainer (`adaptive_loop.training.Trainer`) on the benchmark's
data: a forward pre-hook on the model stamps the start of every training forward, so the
interval between two stamps is one whole optimiser step (batch assembly, forward, loss,
backward, gradient clipping, AdamW). The first `warmup` intervals are dropped; the median
of the rest gives samples/s. Validation runs on one small batch and is not timed.

Achieved GFLOP/s = samples/s x training FLOPs per sample, where a training forward costs
Entry + L Loop steps + (L + 1) Exit evaluations (every depth's exit is supervised) and the
backward pass is counted as twice the forward (the usual 3x rule; matmul FLOPs only, the
convention of `adaptive_loop.model.flops`). The machine's reference is the median
GFLOP/s of a square dense matmul (and of one matmul shaped like the model's FFN) timed in
the same process, right before and after the training window, with the same thread count.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from adaptive_loop.config import RunConfig
from adaptive_loop.data.pipeline import PreparedData
from adaptive_loop.io import write_text


@dataclass
class MatmulRate:
    """Median dense matmul speed for (m x k) @ (k x n)."""

    shape: tuple[int, int, int]
    gflops: float
    seconds: float


@dataclass
class ThroughputResult:
    """Samples/s and achieved GFLOP/s of LoopCTR training next to the machine's matmul rate."""

    model: str
    threads: int
    batch_size: int
    warmup_steps: int
    measured_steps: int
    seconds_per_step: float
    samples_per_second: float
    forward_flops_per_sample: float
    train_flops_per_sample: float
    achieved_gflops: float
    matmul_square: list[MatmulRate]
    matmul_model_shaped: MatmulRate
    fraction_of_square_matmul: float
    fraction_of_model_shaped_matmul: float

    def to_dict(self) -> dict[str, Any]:
        """The measurement as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ThroughputResult":
        """Rebuild a measurement from `to_dict` output (e.g. a cached `throughput.json`)."""
        raw = dict(raw)
        raw["matmul_square"] = [MatmulRate(tuple(m["shape"]), m["gflops"], m["seconds"]) for m in raw["matmul_square"]]
        m = raw["matmul_model_shaped"]
        raw["matmul_model_shaped"] = MatmulRate(tuple(m["shape"]), m["gflops"], m["seconds"])
        return cls(**raw)

    def summary(self) -> str:
        """One line: samples/s, training FLOPs/sample, achieved GFLOP/s and its share of the measured matmul rates."""
        square = statistics.median(m.gflops for m in self.matmul_square)
        return (
            f"{self.model} training: {self.samples_per_second:,.0f} samples/s ({self.seconds_per_step * 1e3:.0f} ms per "
            f"batch of {self.batch_size}), {self.train_flops_per_sample / 1e6:.2f} MFLOP per sample (fwd + bwd) -> "
            f"{self.achieved_gflops:.2f} GFLOP/s; dense matmul {square:.1f} GFLOP/s "
            f"(1024^2, {self.threads} thread(s)) -> {100 * self.fraction_of_square_matmul:.1f}% of it; model-shaped "
            f"matmul {self.matmul_model_shaped.shape} {self.matmul_model_shaped.gflops:.1f} GFLOP/s -> "
            f"{100 * self.fraction_of_model_shaped_matmul:.1f}%"
        )


def matmul_rate(m: int, k: int, n: int, repeats: int = 15, warmup: int = 3) -> MatmulRate:
    """Median GFLOP/s of `a @ b` for float32 (m x k) @ (k x n) on the current thread setting."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen)
    b = torch.randn(k, n, generator=gen)
    for _ in range(warmup):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return MatmulRate((m, k, n), 2.0 * m * k * n / seconds / 1e9, seconds)


class _StepClock:
    """Forward pre-hook: time stamps of training forwards (optionally advancing a profiler)."""

    def __init__(self, profiler: Any = None):
        self.stamps: list[float] = []
        self.profiler = profiler

    def __call__(self, module: torch.nn.Module, _args: Any) -> None:
        if module.training:
            if self.profiler is not None and self.stamps:
                self.profiler.step()
            self.stamps.append(time.perf_counter())


def _short_run_config(config: RunConfig, steps: int) -> RunConfig:
    train = dataclasses.replace(config.train, epochs=1, max_steps_per_epoch=steps, progress=False)
    return dataclasses.replace(config, train=train)


def _small_valid(data: PreparedData, rows: int) -> PreparedData:
    return dataclasses.replace(data, valid=data.valid.subset(slice(0, min(rows, len(data.valid)))))


def measure_training(config: RunConfig, data: PreparedData, steps: int = 30, warmup: int = 5) -> tuple[float, int]:
    """(median seconds per training step, intervals measured) of the real trainer on `data`."""
    from adaptive_loop.training import Trainer

    cfg = _short_run_config(config, warmup + steps + 1)
    with tempfile.TemporaryDirectory(prefix="adaptive-loop-throughput-") as tmp:
        trainer = Trainer(cfg, _small_valid(data, cfg.train.batch_size), tmp, progress=False)
        clock = _StepClock()
        handle = trainer.model.register_forward_pre_hook(clock)
        try:
            trainer.fit()
        finally:
            handle.remove()
    intervals = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])][warmup:]
    if not intervals:
        raise ValueError(f"the training split is too small for {warmup + steps + 1} steps of {cfg.train.batch_size} rows")
    return statistics.median(intervals), len(intervals)


def profile_training(config: RunConfig, data: PreparedData, path: Path, active: int = 5, header: str = "") -> Path:
    """Profile `active` whole training steps (after 1 skipped and 2 warm-up steps); write the top ops table."""
    from torch.profiler import ProfilerActivity, profile, schedule

    from adaptive_loop.training import Trainer

    cfg = _short_run_config(config, 1 + 2 + active + 1)
    with tempfile.TemporaryDirectory(prefix="adaptive-loop-profile-") as tmp:
        trainer = Trainer(cfg, _small_valid(data, cfg.train.batch_size), tmp, progress=False)
        with profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=2, active=active, repeat=1),
                     record_shapes=True) as prof:
            clock = _StepClock(prof)
            handle = trainer.model.register_forward_pre_hook(clock)
            try:
                trainer.fit()
            finally:
                handle.remove()
        by_op = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=60)
        by_shape = prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=40, max_shapes_column_width=80
        )
    text = (f"{header}\nTop operators over {active} whole training steps (self CPU time):\n\n{by_op}\n\n"
            f"The same, split by input shapes:\n\n{by_shape}\n")
    return write_text(path, text)


def measure_throughput(config: RunConfig, data: PreparedData, steps: int = 30, warmup: int = 5) -> ThroughputResult:
    """Samples/s and GFLOP/s of training `config`'s model on `data`, beside this CPU's matmul rate."""
    from adaptive_loop.model import build_model

    torch.set_num_threads(max(1, config.train.num_threads))
    model = build_model(config.model, data.spec)
    flops = model.flops()
    loops = config.model.train_loops
    forward = float(flops.entry + loops * flops.loop + (loops + 1) * flops.exit)
    geometry = getattr(model, "geometry", None)
    tokens = geometry.n_tokens if geometry is not None else 1
    shaped = (config.train.batch_size * tokens, config.model.d_model, config.model.ffn_hidden)
    before = matmul_rate(1024, 1024, 1024)
    seconds, measured = measure_training(config, data, steps, warmup)
    after = matmul_rate(1024, 1024, 1024)
    model_shaped = matmul_rate(*shaped, repeats=30)
    samples = config.train.batch_size / seconds
    achieved = samples * 3.0 * forward / 1e9
    square = statistics.median([before.gflops, after.gflops])
    return ThroughputResult(
        model=f"{config.model.name} L={loops}", threads=config.train.num_threads, batch_size=config.train.batch_size,
        warmup_steps=warmup, measured_steps=measured, seconds_per_step=seconds, samples_per_second=samples,
        forward_flops_per_sample=forward, train_flops_per_sample=3.0 * forward, achieved_gflops=achieved,
        matmul_square=[before, after], matmul_model_shaped=model_shaped,
        fraction_of_square_matmul=achieved / square, fraction_of_model_shaped_matmul=achieved / model_shaped.gflops,
    )
