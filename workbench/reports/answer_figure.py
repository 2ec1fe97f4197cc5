"""The answer drawn the way the verdict sees it: the paired per-seed differences, their interval and the margin.

Per compared variant one row: each seed's difference (variant − baseline final val loss, same seed) as a point,
their mean, the interval the verdict uses (none where the data cannot bound it: labelled "not estimable at n = k"),
the zero line and the equivalence band ±margin. Unpaired per-variant means ± std go below it, labelled as such:
they carry the seed-to-seed variation the pairing cancels, so their error bars can overlap while the paired
differences all agree.

The report opens on this figure (under its headline sentences); the README's picture is the same top of the report,
headline included, drawn from a run folder by

    python -m workbench figure runs/ablate_norm docs/report.png
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..fileio import write_bytes
from .analysis.comparisons import Comparison, compare, paired_diffs
from .analysis.estimable import not_estimable
from .analysis.verdicts import BETTER, EQUIVALENT, NOT_LEARNED, UNDECIDED, WORSE
from .doc import Image
from .headline import compared, sentence
from .load import COMPLETED, Results, Variant, load_curves, load_results
from .plots import DPI, Plot, _figure, _png, colour, draw_final_losses, final_loss_plot, label
from .summary import VariantSummary, summarize_all, table_order

NAME, TITLE = "paired_differences", "Paired differences per seed, with the interval and margin the verdict tests"
VERDICT_COLOURS = {BETTER: "#1a7f37", WORSE: "#c62828", EQUIVALENT: "#444444", UNDECIDED: "#9a6700",
                   NOT_LEARNED: "#6e6e6e"}
Row = tuple[Variant, Comparison, list[float]]


def _rows(results: Results, pairs: list[tuple[Variant, Comparison]]) -> list[Row]:
    """Each compared variant with its comparison and its finite per-seed differences, in seed order."""
    out = []
    for v, c in pairs:
        base = results.variant(c.baseline)
        diffs = [d for d in paired_diffs(results, v, base) if d is not None] if base is not None else []
        out.append((v, c, diffs))
    return out


def _status(c: Comparison) -> str:
    """What the row's right-hand label says: the verdict, and why no interval is drawn where none is."""
    if c.verdict == NOT_LEARNED:
        return f"{NOT_LEARNED}: no verdict, no interval"
    if c.estimable:
        return c.verdict
    return f"{c.verdict}; interval {not_estimable(c.n)}"


def _short(name: str, most: int = 24) -> str:
    """A tick label that leaves the axes their width (the full name is in the sentence above the figure)."""
    return name if len(name) <= most else name[:most - 1] + "…"


def draw_paired(ax, rows: list[Row], margin: float) -> None:
    """One row per comparison, top to bottom in table order; x: Δ in nats/token (negative: the variant is better)."""
    xs = [0.0, -margin, margin]
    for i, (v, c, diffs) in enumerate(rows):
        col = colour(v.index)
        if diffs:
            offsets = np.linspace(-0.12, 0.12, len(diffs)) if len(diffs) > 1 else np.zeros(1)
            ax.scatter(diffs, i + offsets, s=34, facecolors="white", edgecolors=col, linewidths=1.5, zorder=4)
            xs += diffs
        if c.estimable and c.verdict != NOT_LEARNED:
            ax.errorbar(c.mean, i, xerr=[[c.mean - c.low], [c.high - c.mean]], fmt="none", ecolor=col, elinewidth=3,
                        capsize=7, capthick=2, zorder=3)
            xs += [c.low, c.high]
        if c.mean is not None:
            ax.plot([c.mean], [i], marker="D", ms=8, color=col, mec="black", mew=0.8, lw=0, zorder=5)
        ax.text(0.005, i - 0.3, label(_status(c)), transform=ax.get_yaxis_transform(), va="center", ha="left",
                fontsize="small", fontweight="bold", color=VERDICT_COLOURS.get(c.verdict, "#1a1a1a"), zorder=6,
                bbox={"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1.0})
    ax.axvspan(-margin, margin, color="#9e9e9e", alpha=0.22, lw=0, zorder=1)
    ax.axvline(0.0, color="black", lw=1.1, zorder=2)
    low, high = min(xs), max(xs)
    pad = 0.08 * (high - low or 1.0)
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(len(rows) - 0.55, -0.6)  # first row on top, room for its label above it
    ax.set_yticks(range(len(rows)), [label(f"{_short(v.name)}\nvs {_short(c.baseline)}") for v, c, _ in rows])
    ax.grid(True, axis="x", alpha=0.35)
    ax.grid(False, axis="y")
    ax.set_xlabel("Δ = variant − baseline final val loss, same seed (nats / token; below 0: the variant is better)")
    ax.set_title("Paired differences per seed: what the verdict tests", fontsize="medium", loc="left", pad=20)
    handles = [Line2D([], [], color="dimgrey", marker="o", mfc="white", lw=0, label="one seed"),
               Line2D([], [], color="dimgrey", marker="D", mec="black", lw=0, label="mean Δ"),
               Line2D([], [], color="dimgrey", lw=3, label="interval of the verdict"),
               Patch(color="#9e9e9e", alpha=0.4, label=f"equivalence band ±{margin:g}")]
    ax.legend(handles=handles, fontsize="small", loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=4, frameon=False,
              borderaxespad=0.0, borderpad=0.1, handletextpad=0.4, columnspacing=1.5)


def _paired_height(rows: int) -> float:
    return 1.15 + 0.5 * rows  # inches: axis label, legend and title, then one row per comparison


def paired_plot(results: Results, pairs: list[tuple[Variant, Comparison]]) -> bytes | None:
    """The paired-differences figure on its own (the report's first image); None without a comparison."""
    if not pairs:
        return None
    fig, ax = _figure(9.0, _paired_height(len(pairs)))
    draw_paired(ax, _rows(results, pairs), results.margin)
    return _png(fig)


def _floor(pairs: list[tuple[Variant, Comparison]]) -> float | None:
    """The unigram floor, for the means panel, where some comparison has not learned (its losses sit near it)."""
    return next((s.floor for _, c in pairs if c.verdict == NOT_LEARNED for s in c.learned if s.not_learned), None)


def answer_plots(results: Results, order: list[Variant], comparisons: dict[str, Comparison],
                 summaries: list[VariantSummary]) -> list[Plot]:
    """The report's opening figures: the paired differences, then the unpaired means (each None if nothing to draw)."""
    pairs = compared(results, order, comparisons)
    return [Plot(NAME, TITLE, paired_plot(results, pairs), "no comparison with a baseline has paired seeds"),
            Plot("final_val_loss", "Final validation loss per variant (unpaired)", final_loss_plot(summaries, _floor(pairs)),
                 "no completed run reports a final validation loss")]


def answer_images(plots: list[Plot]) -> list[Image]:
    return [Image(p.title, str(Path("plots") / f"{p.name}.png"), p.png) for p in plots if p.png]


def _wrapped(lines: list[str], width: int = 125) -> str:
    return "\n".join(textwrap.fill(line, width, subsequent_indent="   ") for line in lines)


def figure_png(run_dir: str | Path) -> bytes:
    """The top of the report as one picture (the README's): the experiment, one sentence per comparison, the
    paired differences, and the unpaired means below them. Raises ReportError (one line) without a readable
    results.json."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    run_dir = Path(run_dir)
    results = load_results(run_dir)
    curves = {(v.name, r.seed): c for v in results.variants for r in v.runs
              if r.status == COMPLETED and (c := load_curves(run_dir, v, r)) is not None}
    comparisons = compare(results, run_dir, curves)
    order = table_order(results)
    pairs = compared(results, order, comparisons)
    summaries = summarize_all(results, comparisons)
    head = [f"{results.experiment}: " + (results.description or f"variants against {results.baseline}")]
    head += ["• " + "".join(s for _, s in sentence(results, v, c)) for v, c in pairs] or [
        "• no comparison yet (no baseline, or no seed that both a variant and its baseline completed)"]
    text = _wrapped(head)
    text_h = 0.3 + 0.24 * text.count("\n")
    heights = [text_h] + ([_paired_height(len(pairs))] if pairs else []) + [3.4]
    fig = Figure(figsize=(11, sum(heights)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    top = fig.add_subplot(grid[0])
    top.axis("off")
    top.text(0.0, 1.0, label(text), va="top", ha="left", fontsize="medium", transform=top.transAxes, linespacing=1.5)
    if pairs:
        draw_paired(fig.add_subplot(grid[1]), _rows(results, pairs), results.margin)
    means = fig.add_subplot(grid[-1])
    means.grid(True, alpha=0.35)
    draw_final_losses(means, summaries, _floor(pairs))
    return _png(fig)


def write_figure(run_dir: str | Path, out: str | Path) -> Path:
    """figure_png written atomically to ``out``; returns it."""
    write_bytes(Path(out), figure_png(run_dir))
    return Path(out)
