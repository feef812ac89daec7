"""Which needed-depth regimes of the synthetic data does LoopCTR learn, at which inference depth?

Trains the model of a config (default: the demo's) on the embedded synthetic data, then
reports the test AUC of every `needed_depth` regime at every inference depth 0..K next to
that regime's Bayes AUC (AUC of the generator's true probabilities). With `--vary` it
repeats this for other values of any config key, one key at a time around the base
config (rows, epochs and width are the usual suspects), so one can see whether a regime
is not learnt for lack of data, of training or of capacity.

    python benchmarks/synthetic_regimes.py                       # demo defaults only
    python benchmarks/synthetic_regimes.py \\
        --vary data.options.n_rows=40000,160000 --vary train.epochs=10 --vary model.d_model=64

Writes `benchmarks/results/synthetic_regimes.{json,md,png}` (another stem with `--out`)
atomically. Exploration runs use 1 torch thread (`--threads`); timings in the output are
only comparable within one run.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from adaptive_loop.config import resolve_config
from adaptive_loop.config import load_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.training.per_depth import predict_depths
from adaptive_loop.io import write_json, write_text, write_with
from adaptive_loop.regimes import RegimeAUC, format_regime_table, regime_auc
from adaptive_loop.runs import load_run
from adaptive_loop.training.trainer import train

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class SettingResult:
    """One trained configuration and its regime table on the test split."""

    name: str
    overrides: list[str]
    regimes: list[RegimeAUC]
    best_epoch: int
    epochs_run: int
    seconds_data: float
    seconds_train: float
    seconds_eval: float
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "overrides": self.overrides,
            "regimes": [r.to_dict() for r in self.regimes],
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "seconds_data": round(self.seconds_data, 2),
            "seconds_train": round(self.seconds_train, 2),
            "seconds_eval": round(self.seconds_eval, 2),
            **self.extra,
        }


def run_setting(config_name: str, overrides: list[str], name: str, max_depth: int, threads: int,
                progress: bool = False) -> SettingResult:
    """Generate the data, train, and measure the regime table of one configuration."""
    settings = [*overrides, f"train.num_threads={threads}", f"train.progress={'true' if progress else 'false'}"]
    config = load_config(resolve_config(config_name), settings)
    started = time.perf_counter()
    data = prepare_data(config.data, seed=config.seed)
    seconds_data = time.perf_counter() - started
    if "needed_depth" not in data.test.extras:
        raise SystemExit(f"error: dataset {config.data.dataset!r} carries no needed_depth column")
    with tempfile.TemporaryDirectory(prefix="synthetic-regimes-") as run_dir:
        started = time.perf_counter()
        result = train(config, run_dir, data=data, progress=progress)
        seconds_train = time.perf_counter() - started
        started = time.perf_counter()
        run = load_run(run_dir)
        logits, _ = predict_depths(run.model, data.test, max_depth, config.train.eval_batch_size)
        seconds_eval = time.perf_counter() - started
    test = data.test
    regimes = regime_auc(test.labels, logits, test.extras["needed_depth"], test.extras.get("true_prob"))
    return SettingResult(
        name=name,
        overrides=overrides,
        regimes=regimes,
        best_epoch=result.best_epoch + 1,
        epochs_run=len(result.history),
        seconds_data=seconds_data,
        seconds_train=seconds_train,
        seconds_eval=seconds_eval,
        extra={"valid_auc_by_epoch": [r.valid_auc for r in result.history], "n_test": len(test),
               "train_loops": config.model.train_loops},
    )


def _split_top_level(values: str) -> list[str]:
    """Split at commas outside brackets, so list values stay whole: '[1,0],[1,1]' -> ['[1,0]', '[1,1]']."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(values):
        depth += {"[": 1, "(": 1, "{": 1, "]": -1, ")": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(values[start:i])
            start = i + 1
    parts.append(values[start:])
    return [p for p in parts if p]


def parse_vary(items: list[str]) -> list[tuple[str, list[str]]]:
    """`key=v1,v2` -> (key, [v1, v2]); values keep their YAML spelling; a list value is one value (`key=[1,0],[1,1]`)."""
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise SystemExit(f"error: --vary expects key=value[,value...], got {item!r}")
        out.append((key, _split_top_level(values)))
    return out


def settings_to_run(base: list[str], vary: list[tuple[str, list[str]]], with_base: bool = True) -> list[tuple[str, list[str]]]:
    """The base setting (unless `with_base` is False), then one setting per varied value (one key at a time)."""
    runs = [("base", list(base))] if with_base else []
    for key, values in vary:
        for value in values:
            runs.append((f"{key}={value}", [*base, f"{key}={value}"]))
    return runs


def markdown(results: list[SettingResult], config_name: str, threads: int) -> str:
    lines = [
        "# Synthetic regimes: test AUC per needed_depth at each inference depth",
        "",
        f"Config `{config_name}`; torch threads {threads}; columns d0..dK are inference depths, `bayes` the AUC "
        "of the generator's true probabilities on the same rows. Timings are noisy (shared CPU).",
        "",
    ]
    for r in results:
        lines += [
            f"## {r.name}",
            "",
            f"overrides: `{' '.join(r.overrides) or '(none)'}`; best epoch {r.best_epoch}/{r.epochs_run}; "
            f"data {r.seconds_data:.0f} s, training {r.seconds_train:.0f} s, evaluation {r.seconds_eval:.0f} s",
            "",
            "```",
            format_regime_table(r.regimes),
            "```",
            "",
        ]
    return "\n".join(lines)


def plot(results: list[SettingResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, result in zip(axes.flat, results):
        for i, reg in enumerate(result.regimes):
            depths = np.arange(len(reg.depth_auc))
            colour = "black" if reg.regime is None else colours[i % len(colours)]
            label = "all" if reg.regime is None else f"needs {reg.regime}"
            ax.plot(depths, reg.depth_auc, marker="o", ms=3, color=colour, label=label,
                    lw=2.0 if reg.regime is None else 1.4)
            if reg.bayes_auc is not None:
                ax.axhline(reg.bayes_auc, color=colour, ls=":", lw=1)
        ax.set_title(result.name, fontsize=9)
        ax.set_xlabel("inference depth")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("test AUC (dotted: Bayes)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("AUC per needed_depth regime at each inference depth", fontsize=11)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="demo", help="built-in config name or YAML path (default: demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every setting (repeatable)")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                        help="extra settings: the base with KEY set to each value (repeatable)")
    parser.add_argument("--max-depth", type=int, default=5, help="deepest inference depth K (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU is shared)")
    parser.add_argument("--out", default=str(RESULTS / "synthetic_regimes"), help="output stem (.json/.md/.png)")
    parser.add_argument("--progress", action="store_true", help="show training progress bars")
    parser.add_argument("--skip-base", action="store_true", help="run only the --vary settings, not the base itself")
    args = parser.parse_args(argv)

    runs = settings_to_run(args.set, parse_vary(args.vary), with_base=not args.skip_base)
    if not runs:
        raise SystemExit("error: --skip-base needs at least one --vary setting")
    results = []
    for name, overrides in tqdm(runs, desc="settings", disable=len(runs) == 1):
        result = run_setting(args.config, overrides, name, args.max_depth, args.threads, args.progress)
        results.append(result)
        tqdm.write(f"\n== {name}: best epoch {result.best_epoch}/{result.epochs_run}, "
                   f"train {result.seconds_train:.0f} s")
        tqdm.write(format_regime_table(result.regimes))
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": args.config, "threads": args.threads, "max_depth": args.max_depth,
               "settings": [r.to_dict() for r in results]}
    write_json(stem.with_suffix(".json"), payload)
    write_text(stem.with_suffix(".md"), markdown(results, args.config, args.threads))
    plot(results, stem.with_suffix(".png"))
    print(f"\nwrote {stem.with_suffix('.json')}, .md and .png")


if __name__ == "__main__":
    main()
