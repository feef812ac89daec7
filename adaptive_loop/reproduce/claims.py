"""The paper's four claims, checked against the aggregated numbers, with plain verdicts.

A comparison "A beats B" (test AUC, mean over seeds) gets one of:
- `holds`: A is ahead by more than the seeds' spread (std of A + std of B);
- `ahead within noise`: A is ahead, by no more than that spread;
- `ahead, spread unknown`: A is ahead but a single seed gives no spread;
- `does not hold`: A is not ahead.
A claim's verdict is `holds` when every comparison it rests on holds, `does not hold` when
none of them has A ahead, `partly holds` otherwise, and `not tested` when a variant it
needs was not run. Every verdict carries the numbers it was drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adaptive_loop.reproduce.aggregate import Stat, VariantSummary
from adaptive_loop.reproduce.variants import GRID_LOOPS, MAIN_LOOPS, MAIN_VARIANT

HOLDS = "holds"
WITHIN_NOISE = "ahead within noise"
UNKNOWN_SPREAD = "ahead, spread unknown"
FAILS = "does not hold"
NOT_TESTED = "not tested"
PARTLY = "partly holds"
HOLDS_FOR_RUN = "holds against the baselines that were run"
HEADROOM_BAND = (0.02, 0.04)


@dataclass
class Comparison:
    """`left` vs `right` on test AUC."""

    left: str
    right: str
    left_auc: Stat
    right_auc: Stat
    left_flops: float
    right_flops: float
    verdict: str

    @property
    def difference(self) -> float:
        return self.left_auc.mean - self.right_auc.mean

    def to_dict(self) -> dict[str, Any]:
        """The comparison and its numbers (AUC stats, difference, FLOPs/sample, verdict) as a JSON-ready dict."""
        return {"left": self.left, "right": self.right, "left_auc": self.left_auc.to_dict(),
                "right_auc": self.right_auc.to_dict(), "difference": self.difference,
                "left_flops_per_sample": self.left_flops, "right_flops_per_sample": self.right_flops,
                "verdict": self.verdict}


@dataclass
class ClaimCheck:
    """One claim: statement, overall verdict, the comparisons behind it and findings in words."""

    claim: int
    statement: str
    verdict: str
    comparisons: list[Comparison] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The claim, its verdict, comparisons and findings as a JSON-ready dict."""
        return {"claim": self.claim, "statement": self.statement, "verdict": self.verdict,
                "comparisons": [c.to_dict() for c in self.comparisons], "findings": self.findings}


def beats(left: Stat, right: Stat) -> str:
    """Verdict of "left's mean AUC is higher than right's" (see module docstring)."""
    diff = left.mean - right.mean
    if not diff > 0:
        return FAILS
    if left.std is None or right.std is None:
        return UNKNOWN_SPREAD
    return HOLDS if diff > left.std + right.std else WITHIN_NOISE


def overall(verdicts: list[str]) -> str:
    """A claim's verdict from the verdicts of its comparisons.

    Holds if all hold, does not hold if all fail, partly holds otherwise; not tested if empty.
    """
    if not verdicts:
        return NOT_TESTED
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    if all(v == FAILS for v in verdicts):
        return FAILS
    return PARTLY


def _name(variant: str, depth: int, loops: int) -> str:
    if variant.startswith("loopctr_L") and "_" not in variant[len("loopctr_L"):]:
        return f"LoopCTR({depth}/{loops})"
    if variant.startswith("stackctr"):
        return f"StackCTR({depth}/{loops})"
    return {"deepfm": "DeepFM", "dcnv2": "DCNv2"}.get(variant, f"{variant}@{depth}")


class _Table:
    """Lookup of (variant, depth) -> AUC stat and FLOPs over the summaries that exist."""

    def __init__(self, summaries: dict[str, VariantSummary]):
        self.s = summaries

    def has(self, variant: str, depth: int = 0) -> bool:
        return variant in self.s and depth <= self.s[variant].max_depth

    def compare(self, left: tuple[str, int], right: tuple[str, int], left_name: str | None = None,
                right_name: str | None = None) -> Comparison:
        (lv, ld), (rv, rd) = left, right
        a, b = self.s[lv], self.s[rv]
        return Comparison(
            left=left_name or _name(lv, ld, a.train_loops), right=right_name or _name(rv, rd, b.train_loops),
            left_auc=a.auc(ld), right_auc=b.auc(rd), left_flops=a.flops_per_sample[ld],
            right_flops=b.flops_per_sample[rd], verdict=beats(a.auc(ld), b.auc(rd)),
        )


def check_claims(summaries: dict[str, VariantSummary], target_auc: float | None = None) -> list[ClaimCheck]:
    """All four claims on whatever variants were run; `target_auc` adds the LoopCTR(0/3) target line to claim 1."""
    table = _Table(summaries)
    return [_claim_zero_loop(table, target_auc), _claim_scaling(table), _claim_headroom(table), _claim_ablations(table)]


# ---------------------------------------------------------------------------- claim 1
def _claim_zero_loop(t: _Table, target_auc: float | None) -> ClaimCheck:
    statement = ("Train multi-loop, infer zero-loop: LoopCTR(0/3) beats DeepFM, DCNv2, the L = 0 model (Entry + Exit "
                 "only) and StackCTR(3) trained by the same benchmark on the same split.")
    check = ClaimCheck(1, statement, NOT_TESTED)
    main = (MAIN_VARIANT, 0)
    if not t.has(*main):
        check.findings.append(f"{MAIN_VARIANT} was not run")
        return check
    rivals = [("deepfm", 0), ("dcnv2", 0), ("loopctr_L0", 0), (f"stackctr_L{MAIN_LOOPS}", MAIN_LOOPS)]
    missing = [v for v, d in rivals if not t.has(v, d)]
    check.comparisons = [t.compare(main, r) for r in rivals if t.has(*r)]
    check.verdict = overall([c.verdict for c in check.comparisons])
    if missing:
        check.findings.append(f"not run: {', '.join(missing)} (the verdict covers only the baselines that were run)")
        if check.verdict == HOLDS:
            check.verdict = HOLDS_FOR_RUN
    stack = f"stackctr_L{MAIN_LOOPS}"
    if t.has(stack, MAIN_LOOPS):
        # equal-FLOPs views (the paper's StackCTR comparison is at equal FLOPs: depth i against depth i)
        extra = [t.compare((MAIN_VARIANT, 0), (stack, 0)), t.compare((MAIN_VARIANT, MAIN_LOOPS), (stack, MAIN_LOOPS))]
        for c in extra:
            check.findings.append(
                f"equal FLOPs ({c.left_flops:,.0f} FLOPs/sample): {c.left} {c.left_auc.format()} vs {c.right} "
                f"{c.right_auc.format()} -> {c.verdict}"
            )
        check.comparisons += extra
    if target_auc is not None:
        auc = t.s[MAIN_VARIANT].auc(0)
        check.findings.append(
            f"target LoopCTR(0/3) test AUC >= {target_auc}: {auc.format()} -> {'met' if auc.mean >= target_auc else 'not met'}"
        )
    return check


# ---------------------------------------------------------------------------- claim 2
def _claim_scaling(t: _Table) -> ClaimCheck:
    statement = ("Loop scaling: more training loops L give better AUC, inference at any depth i works, including i > L "
                 "(grid L in 0..4 x i in 0..K).")
    check = ClaimCheck(2, statement, NOT_TESTED)
    grid = [L for L in GRID_LOOPS if t.has(f"loopctr_L{L}")]
    if len(grid) < 2 or 0 not in grid:
        check.findings.append(f"needs loopctr_L0 and at least one L >= 1; run: {grid}")
        return check
    diagonal = ", ".join(f"L={L}: {t.s[f'loopctr_L{L}'].auc(L).format()}" for L in grid if t.has(f"loopctr_L{L}", L))
    check.findings.append(f"test AUC at i = L: {diagonal}")
    for L in grid[1:]:
        if t.has(f"loopctr_L{L}", L):
            check.comparisons.append(t.compare((f"loopctr_L{L}", L), ("loopctr_L0", 0)))
    for L in grid[1:]:
        s = t.s[f"loopctr_L{L}"]
        beyond = [(i, s.auc(i).mean - s.auc(L).mean) for i in range(L + 1, s.max_depth + 1)]
        if beyond:
            worst = min(beyond, key=lambda x: x[1])
            best = max(beyond, key=lambda x: x[1])
            check.findings.append(
                f"L={L}, inference beyond L (i={L + 1}..{s.max_depth}): change vs i=L from {worst[1]:+.4f} (i={worst[0]}) "
                f"to {best[1]:+.4f} (i={best[0]})"
            )
    best_cell = max(((L, i, t.s[f"loopctr_L{L}"].auc(i).mean) for L in grid for i in range(t.s[f"loopctr_L{L}"].max_depth + 1)),
                    key=lambda x: x[2])
    check.findings.append(f"best cell: L={best_cell[0]}, i={best_cell[1]}: {best_cell[2]:.4f}")
    check.verdict = overall([c.verdict for c in check.comparisons])
    return check


# ---------------------------------------------------------------------------- claim 3
def _claim_headroom(t: _Table) -> ClaimCheck:
    lo, hi = HEADROOM_BAND
    statement = (f"Oracle headroom: the per-sample oracle depth beats the best fixed depth by {lo}-{hi} AUC, and models "
                 "trained with fewer loops have higher oracle ceilings.")
    check = ClaimCheck(3, statement, NOT_TESTED)
    grid = [L for L in GRID_LOOPS if t.has(f"loopctr_L{L}") and "all" in t.s[f"loopctr_L{L}"].headroom]
    if not grid:
        check.findings.append("no LoopCTR variant with more than one evaluated depth was run")
        return check
    verdicts = []
    for L in grid:
        h = t.s[f"loopctr_L{L}"].headroom
        parts = [f"{name} (0..{v.max_depth}): gap {v.gap.format()}, oracle {v.oracle_auc.format()}, best fixed "
                 f"{v.best_fixed_auc.format()} at depth(s) {v.best_fixed_depths}" for name, v in h.items()]
        check.findings.append(f"L={L}: " + "; ".join(parts))
    main = t.s.get(MAIN_VARIANT)
    if main is not None and "trained" in main.headroom:
        gap = main.headroom["trained"].gap.mean
        in_band = lo <= gap <= hi
        verdicts.append(HOLDS if in_band else FAILS)
        check.findings.append(
            f"L={MAIN_LOOPS} headroom over its trained depths: {gap:.4f} -> {'inside' if in_band else 'outside'} the "
            f"paper's {lo}-{hi} band"
        )
    ceilings = [(L, t.s[f"loopctr_L{L}"].headroom["all"].oracle_auc) for L in grid if L >= 1]
    if len(ceilings) >= 2:
        text = ", ".join(f"L={L}: {s.format()}" for L, s in ceilings)
        check.findings.append(f"oracle ceiling over the same depths 0..K: {text}")
        fewer, more = ceilings[0], ceilings[-1]
        c = Comparison(left=f"oracle ceiling L={fewer[0]}", right=f"oracle ceiling L={more[0]}", left_auc=fewer[1],
                       right_auc=more[1], left_flops=float("nan"), right_flops=float("nan"),
                       verdict=beats(fewer[1], more[1]))
        check.comparisons.append(c)
        verdicts.append(c.verdict)
        monotone = all(a[1].mean >= b[1].mean for a, b in zip(ceilings, ceilings[1:]))
        check.findings.append(f"ceiling falls monotonically with L: {'yes' if monotone else 'no'}")
    else:  # the claim's other half needs two trained-loop variants: a band check alone is not the whole claim
        check.findings.append("fewer loops, higher ceiling: not tested (needs two of the variants with L = 1..4; "
                              "L = 0 has no trained loop steps to compare)")
        if verdicts and all(v == HOLDS for v in verdicts):  # the band holds: the claim partly holds at best
            verdicts.append(NOT_TESTED)
    check.verdict = overall(verdicts)
    return check


# ---------------------------------------------------------------------------- claim 4
def _claim_ablations(t: _Table) -> ClaimCheck:
    statement = ("Ablations: removing MoE or hyper-connections hurts, and E/k = 4/2 beats 4/1 and 4/4 "
                 f"(LoopCTR L={MAIN_LOOPS}, at i = 0 and i = {MAIN_LOOPS}).")
    check = ClaimCheck(4, statement, NOT_TESTED)
    if not t.has(MAIN_VARIANT):
        check.findings.append(f"{MAIN_VARIANT} was not run")
        return check
    ablations = {"no_moe": "without MoE", "no_hc": "without hyper-connections", "top1": "E/k = 4/1", "top4": "E/k = 4/4"}
    ran = []
    for suffix, what in ablations.items():
        name = f"{MAIN_VARIANT}_{suffix}"
        if not t.has(name):
            continue
        ran.append(suffix)
        for depth in (0, MAIN_LOOPS):
            check.comparisons.append(t.compare((MAIN_VARIANT, depth), (name, depth),
                                               left_name=f"LoopCTR({depth}/{MAIN_LOOPS}) E/k = 4/2",
                                               right_name=f"LoopCTR({depth}/{MAIN_LOOPS}) {what}"))
    missing = [s for s in ablations if s not in ran]
    if missing:
        check.findings.append(f"not run: {', '.join(f'{MAIN_VARIANT}_{s}' for s in missing)}")
    check.verdict = overall([c.verdict for c in check.comparisons])
    return check
