"""The models the reproduction benchmark trains, each a set of overrides on one base config.

Every LoopCTR variant starts from the dataset's base config (`adaptive_loop/configs/<dataset>.yaml`)
and changes only what names it, so split, encoders, embedding width, optimiser, batch
size, epochs and the early-stopping rule (patience on the validation monitor `auc@L`, i.e.
AUC at the model's own trained depth; depth 0 for models without a loop) are shared.
DeepFM and DCNv2 have their own tuned recipes (`<model>_<dataset>.yaml`, BARS's settings):
where such a config exists, `BenchmarkSettings` trains them with it on the same split
(`Variant.own_config`), so a baseline is never handicapped by LoopCTR's sizes and recipe.

Groups (what each claim of the paper needs):
- `baselines`: DeepFM, DCNv2 and StackCTR(3) (three unshared loop blocks, the same FLOPs
  per depth as LoopCTR) - compared with LoopCTR(0/3) and LoopCTR(3/3) (claim 1);
- `scaling`: LoopCTR trained with L = 0..4 loops, each evaluated at i = 0..K loops
  (claims 2 and 3; L = 3 is also the main model and L = 0 the Entry + Exit only model);
- `ablations`: LoopCTR(L=3) without MoE (dense FFN and dense attention projections of one
  expert's width), without hyper-connections, and top-1 / top-4 of 4 experts (claim 4).
"""

from __future__ import annotations

from dataclasses import dataclass

from adaptive_loop.errors import ConfigError

GRID_LOOPS = (0, 1, 2, 3, 4)
MAIN_LOOPS = 3


@dataclass(frozen=True)
class Variant:
    """One model of the benchmark.

    Attributes:
        name: identifier used in folders and results (`loopctr_L3`).
        label: how tables name it (`LoopCTR L=3`).
        overrides: dotted `key=value` config overrides applied to the base config.
        groups: the benchmark groups it belongs to.
        train_loops: L (0 for the baselines without a loop).
        loops: whether it is a weight-shared LoopCTR (evaluated at every depth up to K);
            StackCTR stops at its L, DeepFM and DCNv2 at 0.
        own_config: stem of the model's own built-in config (`deepfm` -> `deepfm_<dataset>.yaml`),
            used instead of the shared base when it exists; None = always the shared base.
    """

    name: str
    label: str
    overrides: tuple[str, ...]
    groups: tuple[str, ...]
    train_loops: int
    loops: bool
    own_config: str | None = None

    def eval_depth(self, grid_depth: int) -> int:
        """Deepest depth this model can be evaluated at when the grid goes to `grid_depth`."""
        return grid_depth if self.loops else self.train_loops


def _loopctr(loops: int, groups: tuple[str, ...]) -> Variant:
    return Variant(f"loopctr_L{loops}", f"LoopCTR L={loops}", ("model.name=loopctr", f"model.train_loops={loops}"),
                   groups, loops, True)


def _ablation(suffix: str, label: str, overrides: tuple[str, ...]) -> Variant:
    base = ("model.name=loopctr", f"model.train_loops={MAIN_LOOPS}")
    return Variant(f"loopctr_L{MAIN_LOOPS}_{suffix}", label, base + overrides, ("ablations",), MAIN_LOOPS, True)


def _all_variants() -> dict[str, Variant]:
    variants = [
        Variant("deepfm", "DeepFM", ("model.name=deepfm", "model.train_loops=0"), ("baselines",), 0, False, "deepfm"),
        Variant("dcnv2", "DCNv2", ("model.name=dcnv2", "model.train_loops=0"), ("baselines",), 0, False, "dcnv2"),
        Variant(f"stackctr_L{MAIN_LOOPS}", f"StackCTR L={MAIN_LOOPS}",
                ("model.name=stackctr", f"model.train_loops={MAIN_LOOPS}"), ("baselines",), MAIN_LOOPS, False),
    ]
    variants += [_loopctr(loops, ("scaling",)) for loops in GRID_LOOPS]
    variants += [
        _ablation("no_moe", "LoopCTR L=3 without MoE", ("model.moe=false", "model.moe_attention=false")),
        _ablation("no_hc", "LoopCTR L=3 without hyper-connections", ("model.hyper_connections=false",)),
        _ablation("top1", "LoopCTR L=3, E/k = 4/1", ("model.n_experts=4", "model.top_k=1")),
        _ablation("top4", "LoopCTR L=3, E/k = 4/4", ("model.n_experts=4", "model.top_k=4")),
    ]
    return {v.name: v for v in variants}


VARIANTS: dict[str, Variant] = _all_variants()
GROUPS: tuple[str, ...] = ("baselines", "scaling", "ablations")
MAIN_VARIANT = f"loopctr_L{MAIN_LOOPS}"


def resolve_variants(selection: str | list[str] | None) -> list[Variant]:
    """Variants named by `selection` (names or group names, comma-separated); None = all of them.

    The result keeps the benchmark's order and has no duplicates.
    """
    if selection is None:
        return list(VARIANTS.values())
    items = selection.split(",") if isinstance(selection, str) else [p for s in selection for p in s.split(",")]
    wanted: set[str] = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item == "all":
            wanted.update(VARIANTS)
        elif item in GROUPS:
            wanted.update(n for n, v in VARIANTS.items() if item in v.groups)
        elif item in VARIANTS:
            wanted.add(item)
        else:
            raise ConfigError(
                f"unknown variant {item!r}; choose from the groups {', '.join(GROUPS)} or the variants "
                f"{', '.join(VARIANTS)}"
            )
    if not wanted:
        raise ConfigError("--variants selected no variant")
    return [v for n, v in VARIANTS.items() if n in wanted]
