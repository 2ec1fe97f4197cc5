"""Recompute the verdicts of docs/findings.md's four single-comparison sweeps with the analysis the report now
runs (noise pooled over the whole design, issue 25; docs/verdicts.md).

The run folders are not in the repository. ffn_horizon, placement_depth and positions_width: the per-seed final
val losses the page prints, to 2 decimals (each ±0.005 from the run's). norm_width: the page printed no losses,
but each point's two paired differences follow from the mean and the old 95% interval on 1 df (mean ± t * |d0 -
d1| / 2), and with two run groups per point the pooled model's residuals depend on the differences alone (the
baseline is entered as 0); they are known to ±0.0005. A Results is built from them and handed to
comparisons.compare, the report's own entry: one Holm family per sweep point, the fixed seeds [0, 1] as one look,
the experiment's variants left out by --variant listed untrained as results.json lists them (they count in Holm's
m, as the old intervals show: 2 for ablate_ffn's relu, 3 for ablate_positions' learned). Multipliers need the
runs' curves and stay the page's point estimates; from 2 seeds they are not estimable (multipliers.py). The last
column is the share of 2,000 draws, each input moved uniformly within its rounding, that give the same verdict
(design.decide_design, the procedure compare() runs, on every draw at once). Last, the df of a tuned experiment's
2-seed verdict.

Usage: python docs/findings/repool.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from workbench.reports.analysis.comparisons import compare
from workbench.reports.analysis.design import decide_design
from workbench.reports.analysis.estimable import MIN_DF, not_estimable
from workbench.reports.analysis.pooled import additive_fit
from workbench.reports.analysis.verdicts import SeedPolicy
from workbench.reports.load import COMPLETED, MISSING, Results, Run, Variant

SEEDS = [0, 1]
DRAWS = 2000


def from_interval(mean: float, low: float, high: float) -> tuple[float, float]:
    """The two paired differences behind an old 2-seed Δ and its 95% t-interval on 1 df."""
    half_spread = (high - low) / 2 / float(stats.t.ppf(0.975, 1))
    return mean - half_spread, mean + half_spread


# sweep: (baseline, variant, points, {arch: per point (seed 0, seed 1) final val loss}, untrained archs, rounding)
SWEEPS = {
    "ffn_horizon": ("swiglu", "relu", ["steps100", "steps200", "steps400"],
                    {"swiglu": [(4.94, 4.98), (4.26, 4.32), (3.78, 3.79)],
                     "relu": [(4.73, 4.82), (4.15, 4.22), (3.76, 3.80)]}, ["gelu"], 0.005),
    "placement_depth": ("pre", "post", ["n_layers2", "n_layers4", "n_layers8"],
                        {"pre": [(4.05, 4.12), (4.38, 4.47), (4.82, 5.16)],
                         "post": [(4.06, 4.08), (3.99, 4.00), (3.93, 3.96)]}, [], 0.005),
    "positions_width": ("rope", "learned", ["d64", "d96", "d128"],
                        {"rope": [(4.42, 4.40), (4.32, 4.46), (4.26, 4.32)],
                         "learned": [(5.53, 5.08), (5.25, 5.58), (5.08, 5.14)]}, ["sinusoidal", "none"], 0.005),
    # the old table: -0.021 [-0.143, +0.101], +0.0167 [-0.418, +0.452], -0.0284 [-0.032, -0.024]
    "norm_width": ("rmsnorm", "layernorm", ["d64", "d96", "d128"],
                   {"rmsnorm": [(0.0, 0.0)] * 3,
                    "layernorm": [from_interval(-0.021, -0.143, 0.101), from_interval(0.0167, -0.418, 0.452),
                                  from_interval(-0.0284, -0.032, -0.024)]}, [], 0.0005),
}


def results(name: str, baseline: str, sizes: list[str], losses: dict[str, list[tuple[float, float]]],
            untrained: list[str]) -> Results:
    """The sweep as the report reads results.json: one run group per arch and point, every seed completed, and
    the archs left out by --variant with their seeds missing."""
    groups = []
    for size_index, size in enumerate(sizes):
        for arch in list(losses) + untrained:
            cell = f"{arch}@{size}"
            runs = ([Run(seed, COMPLETED, final_val_loss=loss, variant=cell)
                     for seed, loss in zip(SEEDS, losses[arch][size_index])] if arch in losses else
                    [Run(seed, MISSING, variant=cell) for seed in SEEDS])
            groups.append(Variant(cell, len(groups), {}, None, None, None, runs, arch=arch, size=size))
    return Results(Path(name), name, "", baseline, baseline, list(SEEDS), groups, None, sizes=list(sizes),
                   seed_policy=SeedPolicy(min=len(SEEDS), max=len(SEEDS)))


def rounding_check(res: Results, families: list[list[tuple[int, int]]], verdicts: list[str],
                   rounding: float) -> list[float]:
    """Per family's first pair, the share of draws (each input moved uniformly within ±rounding) whose verdict is
    `verdicts`'; draw 0 is the inputs as given, and must give `verdicts` (compare()'s)."""
    base = np.array([[np.nan if r.final_val_loss is None else r.final_val_loss for r in v.runs]
                     for v in res.variants])
    noise = np.random.default_rng(0).uniform(-rounding, rounding, (DRAWS,) + base.shape)
    noise[0] = 0.0
    pairs = [p for family in families for p in family]
    groups = [[pairs.index(p) for p in family] for family in families]
    sizes = [res.sizes.index(v.size) for v in res.variants]
    out = decide_design(base + noise, np.full((DRAWS, len(pairs)), len(SEEDS)), sizes, pairs, groups, res.margin,
                        res.seed_policy)
    first = [family[0] for family in groups]
    if list(out[0, first]) != list(verdicts):
        raise RuntimeError(f"{res.experiment}: decide_design gives {list(out[0, first])}, compare() {verdicts}")
    return [float(np.mean(out[:, j] == v)) for j, v in zip(first, verdicts)]


def table(name: str) -> str:
    baseline, variant, sizes, losses, untrained, rounding = SWEEPS[name]
    res = results(name, baseline, sizes, losses, untrained)
    comparisons = compare(res, res.path, curves={})
    index = {v.name: g for g, v in enumerate(res.variants)}
    rows = [comparisons[f"{variant}@{size}"] for size in sizes]
    # one Holm family per point, the compared variant first, as compare() forms them
    families = [[(index[f"{arch}@{size}"], index[f"{baseline}@{size}"]) for arch in [variant] + untrained]
                for size in sizes]
    held = rounding_check(res, families, [c.verdict for c in rows], rounding)
    lines = [f"### {name}: {variant} - {baseline}", "",
             "| variant | scale | Δ val loss [interval] | verdict | df | variance | same verdict within rounding |",
             "|---|---|---|---|---|---|---|"]
    for size, c, share in zip(sizes, rows, held):
        shown = (f"[{c.low:+.3f}, {c.high:+.3f}] at {c.level:.1%}" if c.estimable else not_estimable(c.n))
        lines.append(f"| {variant} | {size} | {c.mean:+.3f} {shown} | {c.verdict} | {c.df} | {c.variance} | "
                     f"{share:.0%} |")
    return "\n".join(lines)


def tuned_df() -> str:
    """A tuned experiment's verdict (docs/findings.md, "Each variant at its own tuned learning rate"): its pooled
    model holds only the two run groups at their chosen grid points, on seeds [0, 1], so its df follow from the
    design alone: 1, below MIN_DF, whatever the losses."""
    _, df = additive_fit(np.zeros((2, len(SEEDS))), np.ones((2, len(SEEDS)), dtype=bool))
    state = "undecided, Δ interval and multiplier " + not_estimable(len(SEEDS)) if df < MIN_DF else "testable"
    return f"### tuned_*: two run groups at their optima, seeds {SEEDS}: df {df}: {state}"


def main() -> None:
    for name in SWEEPS:
        print(table(name) + "\n")
    print(tuned_df())


if __name__ == "__main__":
    main()
