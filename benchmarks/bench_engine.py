"""Wall-clock of the adaptive inference engine against the naive masked loop and fixed full depth.

Question: does per-sample depth save real time, not only FLOPs on paper (LOOPCTR.md
section 6)? For depth mixes from "everyone exits at depth 0" to "everyone runs to K" and
batch sizes 256 / 4,096 / 65,536 it times, side by side in one run and interleaved within
each repetition (medians over repetitions):

  (a) the engine (`AdaptiveScorer`): gather/scatter for an incremental controller, depth
      buckets for an up-front controller;
  (b) the naive masked loop (`engine.reference.masked_scores`): every row through every
      loop step and Exit until the deepest row is done, finished rows masked;
  (c) fixed full depth K (Entry + K Loop steps + one Exit for every row).

The figure reported is realised speed-up / FLOPs speed-up, both against (c):
`(t_fixed / t_engine) / (FLOPs_fixed / FLOPs_engine)`, 1.0 = the wall-clock saving is
exactly the FLOPs saving. FLOPs are the engine's charged FLOPs (Entry, loop steps, every
Exit evaluation, controller). Controller overhead = time inside the controller protocol
(StepView building, numpy copies, should_stop / decide_upfront) over the engine's time.

Set-up: a demo-size LoopCTR (the `demo` config: d = 32, 4 heads, 4 experts top-2, two
hyper-connection streams, L = 3; 12 sequence + 4 global tokens) with **random
initialisation** - wall-clock does not depend on trained weights, only MoE routing balance
could, and random routers are close to balanced - run to K = 5, on encoded rows of the
embedded synthetic dataset. Depth mixes are imposed by two scripted controllers that read
each row's depth from a side column: an up-front one (bucketing) and an incremental rule
(stop when depth >= the row's depth; 2 FLOPs per step). The real `confidence` controller,
calibrated on a trace of the same model, is timed as well to report its overhead.
`torch.set_num_threads(2)`: the machine has 2 cores, and 2 threads were fastest there
(docs MACHINE_NOTES.md). Times are noisy (+-20%) when other processes run: compare within
one run only. Also reported: sequence sharing (64 candidates per user) and zero-loop
throughput of LoopCTR(0/3) beside DeepFM and DCNv2 built from the same code and spec.

    python benchmarks/bench_engine.py [--repeats 5] [--big-repeats 2] [--quick]

Writes `benchmarks/results/bench_engine.json` and `bench_engine.png` atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.datasets.synthetic import generate_synthetic, synthetic_schema
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.engine import AdaptiveScorer
from adaptive_loop.engine.reference import fixed_scores, masked_scores
from adaptive_loop.io import atomic_path, write_json
from adaptive_loop.model import LoopCTRConfig, build_model, config_class, config_from_dict
from adaptive_loop.trace import DepthTrace, TraceMeta
from adaptive_loop.trace_builder import build_trace
from controllers.base import Controller, IncrementalController, StepView
from controllers.registry import make_controller

RESULTS = Path(__file__).resolve().parent / "results"
K = 5
SEQ_LEN = 12
DEMO_MODEL = dict(embed_dim=8, d_model=32, n_heads=4, ffn_mult=2, train_loops=3, tower_hidden=[64])
MIXES: dict[str, list[float]] = {
    "all_0": [1, 0, 0, 0, 0, 0],
    "shallow": [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.03125],
    "uniform": [1, 1, 1, 1, 1, 1],
    "half_0_half_K": [0.5, 0, 0, 0, 0, 0.5],
    "deep": [0.03125, 0.03125, 0.0625, 0.125, 0.25, 0.5],
    "all_K": [0, 0, 0, 0, 0, 1],
}
COLUMN = "bench_depth"


# --------------------------------------------------------------------------- scripted controllers
class ScriptedUpfront(Controller):
    """Up-front: each row's depth is read from the side column `bench_depth` (no FLOPs)."""

    name: ClassVar[str] = "scripted_upfront"
    budget_param: ClassVar[str] = "unused"
    kind: ClassVar[str] = "upfront"
    uses_first_step: ClassVar[bool] = False
    step_inputs: ClassVar[frozenset[str]] = frozenset({"features"})

    def __init__(self, unused: float = 0.0) -> None:
        self.unused = unused

    def decide_upfront(self, step: StepView) -> np.ndarray:
        return np.asarray(step.features[COLUMN], dtype=np.int64)


class ScriptedStop(IncrementalController):
    """Incremental: stop once depth >= the row's `bench_depth` (a subtract and a compare per step)."""

    name: ClassVar[str] = "scripted_stop"
    budget_param: ClassVar[str] = "threshold"
    stop_if: ClassVar[str] = "ge"
    step_inputs: ClassVar[frozenset[str]] = frozenset({"features"})

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = threshold

    @property
    def flops_per_step(self) -> float:
        return 2.0

    def _score(self, step: StepView, state: dict) -> np.ndarray:
        return step.depth - np.asarray(step.features[COLUMN], dtype=np.float64)


def dummy_trace(model: Any) -> DepthTrace:
    f = model.flops()
    meta = TraceMeta(f.entry, f.loop, f.exit, K, int(model.train_loops), flops_summary=f.summary)
    return DepthTrace(ids=np.arange(4), labels=np.zeros(4), logits=np.zeros((4, K + 1)), meta=meta)


# --------------------------------------------------------------------------- set-up
def make_world(n_rows: int, seed: int = 0) -> tuple[FeatureEncoder, EncodedData, EncodedData]:
    frame = generate_synthetic(n_rows=n_rows + 20_000, seed=seed, seq_len=SEQ_LEN)
    encoder = FeatureEncoder(synthetic_schema(SEQ_LEN)).fit(frame.iloc[:20_000])
    return encoder, encoder.transform(frame.iloc[:8192]), encoder.transform(frame.iloc[20_000:])


def build(name: str, spec: Any, **extra: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    sizes = DEMO_MODEL if config_class(name) is LoopCTRConfig else {"embed_dim": DEMO_MODEL["embed_dim"]}  # baselines: own keys
    return build_model(config_from_dict({**sizes, "name": name, **extra}), spec).eval()


def assign_depths(n: int, mix: list[float], seed: int) -> np.ndarray:
    """Exactly the mix's proportions (largest-remainder rounding), in a seeded random order."""
    p = np.asarray(mix, dtype=np.float64) / np.sum(mix)
    counts = np.floor(p * n).astype(np.int64)
    counts[np.argsort(-(p * n - counts))[: n - counts.sum()]] += 1
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(K + 1), counts))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# --------------------------------------------------------------------------- measurements
def depth_mix_grid(model: Any, data: EncodedData, batch_sizes: list[int], repeats: int, big_repeats: int) -> list[dict]:
    """Per batch size and mix: engine and masked loop for both controller kinds, and fixed K, interleaved."""
    rows: list[dict] = []
    fixed_k_flops = float(model.flops().at_depth(K))
    trace = dummy_trace(model)
    scorers = {"upfront": AdaptiveScorer(model, ScriptedUpfront().fit(trace)),
               "incremental": AdaptiveScorer(model, ScriptedStop().fit(trace))}
    for bs in batch_sizes:
        batch = data.subset(slice(0, bs)).to_batch()
        reps = repeats if bs <= 4096 else big_repeats
        for mix_name, mix in MIXES.items():
            feats = {COLUMN: assign_depths(bs, mix, seed=bs)}
            jobs: dict[str, Callable[[], Any]] = {"fixed": lambda: fixed_scores(model, batch, K)}
            for kind, scorer in scorers.items():
                jobs[f"engine/{kind}"] = lambda sc=scorer: sc.score_batch(batch, feats)
                jobs[f"masked/{kind}"] = lambda sc=scorer: masked_scores(sc, batch, feats)
            times: dict[str, list[float]] = {name: [] for name in jobs}
            ctrl: dict[str, list[float]] = {kind: [] for kind in scorers}
            outs: dict[str, Any] = {}
            names = list(jobs)
            for r in range(reps):
                for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who runs first
                    t, outs[name] = timed(jobs[name])
                    times[name].append(t)
                    if name.startswith("engine/"):
                        ctrl[name.split("/")[1]].append(outs[name].times.controller)
            med = {name: statistics.median(v) for name, v in times.items()}
            for kind in scorers:
                out, masked = outs[f"engine/{kind}"], outs[f"masked/{kind}"]
                t_engine, t_masked, t_fixed = med[f"engine/{kind}"], med[f"masked/{kind}"], med["fixed"]
                flops_engine = float(out.flops.mean())
                flops_speedup = fixed_k_flops / flops_engine
                realised = t_fixed / t_engine
                row = {
                    "batch_size": bs, "mix": mix_name, "controller": kind, "repeats": reps,
                    "mean_depth": float(out.depth.mean()), "engine_s": t_engine, "masked_s": t_masked, "fixed_K_s": t_fixed,
                    "controller_s": statistics.median(ctrl[kind]),
                    "flops_engine": flops_engine, "flops_masked": float(masked.flops.mean()), "flops_fixed_K": fixed_k_flops,
                    "flops_speedup": flops_speedup, "realised_speedup": realised, "ratio": realised / flops_speedup,
                    "masked_realised_speedup": t_fixed / t_masked,
                    "controller_share": statistics.median(ctrl[kind]) / t_engine,
                    "engine_rows_per_s": bs / t_engine,
                }
                rows.append(row)
                print(f"bs={bs:>6} {mix_name:<14} {kind:<11} depth {row['mean_depth']:.2f}  engine {t_engine:.4f}s "
                      f"masked {t_masked:.4f}s fixedK {t_fixed:.4f}s | FLOPs x{flops_speedup:.2f} wall "
                      f"x{realised:.2f} ratio {row['ratio']:.2f} | ctrl {100 * row['controller_share']:.1f}%", flush=True)
    return rows


def confidence_overhead(model: Any, calib: EncodedData, data: EncodedData, batch_sizes: list[int], repeats: int) -> list[dict]:
    """The real confidence controller (calibrated to the cost of depth 2 on a trace of this model)."""
    trace = build_trace(model, calib, K, dataset="synthetic", split="valid", model_config={}, hidden=False)
    controller = make_controller("confidence").fit(trace)
    f = model.flops()
    controller.calibrate(trace, f.entry + 2 * f.loop + f.exit)
    scorer = AdaptiveScorer(model, controller)
    rows = []
    for bs in batch_sizes:
        batch = data.subset(slice(0, bs)).to_batch()
        runs = [scorer.score_batch(batch) for _ in range(repeats)]
        total = statistics.median(r.times.total for r in runs)
        ctrl = statistics.median(r.times.controller for r in runs)
        fixed = statistics.median(timed(lambda: fixed_scores(model, batch, K))[0] for _ in range(repeats))
        flops_speedup = float(f.at_depth(K)) / float(runs[0].flops.mean())
        rows.append({"batch_size": bs, "threshold": float(controller.threshold), "mean_depth": float(runs[0].depth.mean()),
                     "engine_s": total, "controller_s": ctrl, "controller_share": ctrl / total, "fixed_K_s": fixed,
                     "flops_speedup": flops_speedup, "realised_speedup": fixed / total, "ratio": fixed / total / flops_speedup})
        print(f"confidence bs={bs:>6} depth {rows[-1]['mean_depth']:.2f} engine {total:.4f}s controller {100 * ctrl / total:.1f}% "
              f"ratio {rows[-1]['ratio']:.2f}", flush=True)
    return rows


def sequence_sharing(model: Any, data: EncodedData, batch_size: int, candidates: int, repeats: int) -> dict:
    """One user's history scored against `candidates` candidates: engine with and without sharing."""
    n_users = batch_size // candidates
    part = data.subset(slice(0, batch_size))
    owner = np.repeat(np.arange(n_users), candidates)
    part.seq = {k: v[owner] for k, v in part.seq.items()}
    batch = part.to_batch()
    feats = {COLUMN: assign_depths(batch_size, MIXES["uniform"], seed=1)}
    controller = ScriptedStop().fit(dummy_trace(model))
    plain, shared = AdaptiveScorer(model, controller), AdaptiveScorer(model, controller, share_sequence=True)
    tp, ts = [], []
    for _ in range(repeats):
        tp.append(timed(lambda: plain.score_batch(batch, feats))[0])
        t, out_s = timed(lambda: shared.score_batch(batch, feats))
        ts.append(t)
    out_p = plain.score_batch(batch, feats)
    result = {"batch_size": batch_size, "candidates_per_user": candidates, "mix": "uniform",
              "plain_s": statistics.median(tp), "shared_s": statistics.median(ts),
              "max_abs_logit_diff": float(np.abs(out_p.logits - out_s.logits).max()),
              "same_depths": bool((out_p.depth == out_s.depth).all())}
    result["speedup"] = result["plain_s"] / result["shared_s"]
    print(f"sequence sharing ({candidates} candidates/user, bs {batch_size}): plain {result['plain_s']:.4f}s shared "
          f"{result['shared_s']:.4f}s (x{result['speedup']:.2f}); max |logit diff| {result['max_abs_logit_diff']:.1e}", flush=True)
    return result


def zero_loop_throughput(spec: Any, data: EncodedData, batch_sizes: list[int], repeats: int) -> list[dict]:
    """Rows/s of depth-0 scoring: LoopCTR(0/3) beside DeepFM and DCNv2 (same spec, same code base)."""
    models = {"loopctr_0_of_3": build("loopctr", spec), "deepfm": build("deepfm", spec), "dcnv2": build("dcnv2", spec)}
    rows = []
    for bs in batch_sizes:
        batch = data.subset(slice(0, bs)).to_batch()
        times: dict[str, list[float]] = {k: [] for k in models}
        for r in range(repeats):
            for name, model in models.items():
                times[name].append(timed(lambda: fixed_scores(model, batch, 0))[0])
        for name, model in models.items():
            t = statistics.median(times[name])
            rows.append({"batch_size": bs, "model": name, "seconds": t, "rows_per_s": bs / t,
                         "flops_per_row": float(model.flops().at_depth(0))})
        print(f"zero-loop bs={bs:>6}: " + ", ".join(f"{r['model']} {r['rows_per_s']:,.0f} rows/s"
                                                   for r in rows if r["batch_size"] == bs), flush=True)
    return rows


# --------------------------------------------------------------------------- report
def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    mixes = list(MIXES)
    for ax, kind in zip(axes[:2], ("incremental", "upfront")):
        for bs in sorted({r["batch_size"] for r in rows}):
            sel = {r["mix"]: r for r in rows if r["batch_size"] == bs and r["controller"] == kind}
            ax.plot(range(len(mixes)), [sel[m]["ratio"] for m in mixes], marker="o", label=f"engine, batch {bs:,}")
            ax.plot(range(len(mixes)), [sel[m]["fixed_K_s"] / sel[m]["masked_s"] / sel[m]["flops_speedup"] for m in mixes],
                    marker="x", linestyle=":", label=f"masked loop, batch {bs:,}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(0.9, color="grey", lw=0.8, linestyle="--")
        ax.set_xticks(range(len(mixes)), mixes, rotation=30)
        ax.set_xlabel("depth mix (shallow to deep)")
        ax.set_ylabel("realised speed-up / FLOPs speed-up (vs fixed K)")
        ax.set_title(f"{kind} controller")
        ax.legend(fontsize=7)
    ax = axes[2]
    for kind, marker in (("incremental", "o"), ("upfront", "s")):
        sel = [r for r in rows if r["controller"] == kind and r["batch_size"] >= 4096]
        ax.scatter([r["flops_speedup"] for r in sel], [r["realised_speedup"] for r in sel], marker=marker, label=f"engine, {kind}")
        ax.scatter([r["flops_speedup"] for r in sel], [r["masked_realised_speedup"] for r in sel], marker="x",
                   color="grey", label=f"masked loop, {kind}" if kind == "incremental" else None)
    top = max(r["flops_speedup"] for r in rows) * 1.05
    ax.plot([0, top], [0, top], color="grey", lw=0.8, label="wall = FLOPs")
    ax.set_xlabel("FLOPs speed-up vs fixed depth K (x)")
    ax.set_ylabel("wall-clock speed-up vs fixed depth K (x)")
    ax.set_title("batch >= 4,096: wall-clock vs FLOPs")
    ax.legend(fontsize=7)
    fig.suptitle(f"Adaptive engine vs masked loop, demo-size LoopCTR (K={K}, 2 threads)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 4096, 65536])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions at batch <= 4096")
    parser.add_argument("--big-repeats", type=int, default=3, help="repetitions at batch 65,536")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small smoke run (batch 256 and 1024, 1 repeat); writes nothing")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.batch_sizes, args.repeats, args.big_repeats = [256, 1024], 1, 1
    n_rows = max(args.batch_sizes)
    started = time.perf_counter()
    encoder, calib, data = make_world(n_rows)
    model = build("loopctr", encoder.feature_spec())
    print(f"demo-size LoopCTR: FLOPs/row entry {model.flops().entry:,.0f}, loop {model.flops().loop:,.0f}, "
          f"exit {model.flops().exit:,.0f}; K={K}; {args.threads} threads", flush=True)
    with torch.no_grad():
        grid = depth_mix_grid(model, data, args.batch_sizes, args.repeats, args.big_repeats)
        conf = confidence_overhead(model, calib, data, [b for b in args.batch_sizes if b <= 4096], args.repeats)
        sharing = sequence_sharing(model, data, 4096 if n_rows >= 4096 else 1024, 64, args.repeats)
        zero = zero_loop_throughput(encoder.feature_spec(), data, args.batch_sizes, args.repeats)
    big = [r for r in grid if r["batch_size"] >= 4096]
    summary = {
        "min_ratio_batch_ge_4096": {kind: min((r["ratio"] for r in big if r["controller"] == kind), default=None)
                                    for kind in ("incremental", "upfront")},
        "max_controller_share_batch_ge_4096": max((r["controller_share"] for r in big), default=None),
        "max_controller_share": max(r["controller_share"] for r in grid),
    }
    result = {
        "setup": {"model": DEMO_MODEL, "weights": "random init (seed 0)", "max_depth": K, "threads": args.threads,
                  "flops": dataclasses.asdict(model.flops()),
                  "mixes": MIXES, "python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
                  "load_average_at_start": os.getloadavg()[0]},
        "depth_mixes": grid, "confidence_controller": conf, "sequence_sharing": sharing, "zero_loop_throughput": zero,
        "summary": summary, "seconds": time.perf_counter() - started,
    }
    print(f"min ratio at batch >= 4096: {summary['min_ratio_batch_ge_4096']}; "
          f"max controller share {100 * summary['max_controller_share']:.1f}%")
    if args.quick:
        return
    write_json(args.out / "bench_engine.json", result)
    plot(grid, args.out / "bench_engine.png")
    print(f"wrote {args.out / 'bench_engine.json'} and {args.out / 'bench_engine.png'} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
