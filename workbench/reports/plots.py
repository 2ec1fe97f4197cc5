"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no global backend switch).

Every function returns PNG bytes, or None when there is nothing to draw, so the caller can skip the
figure and say so. A variant keeps one colour everywhere: tab10 colour i for the i-th variant of
results.json; past ten variants the colours repeat with a dashed line style.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Callable

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .load import COMPLETED, Curve, Results, RunCurves, Variant
from .summary import VariantSummary

logger = logging.getLogger(__name__)
DPI = 120
_TAB10 = matplotlib.colormaps["tab10"].colors
CurveMap = dict[tuple[str, int], RunCurves]
Series = tuple[np.ndarray, np.ndarray]  # (x, y), x increasing


def colour(index: int) -> tuple[float, float, float]:
    return _TAB10[index % len(_TAB10)]


def linestyle(index: int) -> str:
    return "-" if index < len(_TAB10) else "--"


def label(s: str) -> str:
    """Matplotlib text: '$' would start mathtext, a leading '_' hides a legend entry."""
    s = s.replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _figure(width: float = 8.0, height: float = 5.0):
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, which="major", alpha=0.35)
    return fig, ax


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def aggregate(series: list[Series]):
    """Mean, min and max over seeds on a shared x grid (the union of their x within the common range).

    Seeds normally share one logging grid, where this is exact; otherwise they are linearly interpolated.
    Returns (x, mean, lo, hi) or None when the seeds' x ranges do not overlap.
    """
    lo_x = max(float(x[0]) for x, _ in series)
    hi_x = min(float(x[-1]) for x, _ in series)
    grid = np.unique(np.concatenate([x[(x >= lo_x) & (x <= hi_x)] for x, _ in series]))
    if grid.size == 0:
        return None
    ys = np.stack([np.interp(grid, x, y) for x, y in series])  # (seeds, points)
    return grid, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


def ema(y: np.ndarray, span: int) -> np.ndarray:
    """Bias-corrected exponential moving average (TensorBoard-style smoothing), alpha = 2 / (span + 1)."""
    alpha, m, out = 2.0 / (span + 1.0), 0.0, np.empty_like(y, dtype=np.float64)
    for i, v in enumerate(y):
        m = (1.0 - alpha) * m + alpha * float(v)
        out[i] = m / (1.0 - (1.0 - alpha) ** (i + 1))
    return out


XY = Callable[[Variant, Curve], "Series | None"]


def _focus_ylim(ax, main: list[Series], extra: list[Series]) -> bool:
    """Fit the y-axis to the main (mean/band) curves after their first 10% of x, so neither the first
    steps' high loss (~ln vocab) nor a diverged run's blow-up flattens the part where variants differ.
    Curves with fewer than 10 points are shown whole. Returns whether anything is cut off."""
    main = main or extra
    low = min(float(y.min()) for _, y in main + extra)
    top = max(float(y.max()) for _, y in main)
    if max(x.size for x, _ in main) >= 10:
        top = min(top, max(float(np.interp(x[0] + 0.1 * (x[-1] - x[0]), x, y)) for x, y in main))
    if top >= max(float(y.max()) for _, y in main + extra) or top <= low:
        return False
    pad = 0.04 * (top - low)
    ax.set_ylim(low - pad, top + pad)
    return True


SHORT = 2  # a curve of at most this many points is drawn with large markers and a note


def most_points(results: Results, curves: CurveMap, which: str) -> int:
    """The most points any run has on its ``which`` ("train" / "val") curve; 0 when none has one."""
    counts = [getattr(c, which).steps.size for v in results.variants for r in v.runs
              if (c := curves.get((v.name, r.seed))) is not None and getattr(c, which) is not None]
    return max(counts, default=0)


def short_curve_note(n: int, which: str) -> str:
    """What a reader needs to know about a curve of ``n`` <= SHORT points."""
    what = "evaluation" if which == "val" else "logged training"
    return (f"only {n} {what} point{'s' if n != 1 else ''} per run (a short run: train.steps is small next to "
            f"train.{'eval_every' if which == 'val' else 'log_every'}), drawn as markers; there is no curve to read, "
            f"compare the final losses instead")


def curve_plot(results: Results, curves: CurveMap, which: str, xy: XY, *, title: str, xlabel: str,
               ylabel: str, logx: bool = False) -> bytes | None:
    """Per variant: mean over completed seeds with a min-max band; other runs as thin dotted lines.
    Curves of at most SHORT points get large markers and a note on the figure."""
    fig, ax = _figure()
    n = most_points(results, curves, which)
    short = 0 < n <= SHORT
    main: list[Series] = []
    extra: list[Series] = []
    for v in results.variants:
        done, other = [], []
        for run in v.runs:
            c = getattr(curves.get((v.name, run.seed)) or RunCurves(None, None), which)
            pts = xy(v, c) if c is not None else None
            if pts is not None and pts[0].size:
                (done if run.status == COMPLETED else other).append((run, pts))
        col, ls = colour(v.index), linestyle(v.index)
        agg = aggregate([p for _, p in done]) if done else None
        if agg is not None:
            x, mean, lo, hi = agg
            seeds = f"mean of {len(done)} seeds" if len(done) > 1 else "1 seed"
            marker = "o" if x.size <= 30 else None  # sparse series (evals): show where the points are
            ax.plot(x, mean, color=col, ls=ls, lw=2, marker=marker, ms=9 if short else 4, label=label(f"{v.name} ({seeds})"))
            if len(done) > 1:
                ax.fill_between(x, lo, hi, color=col, alpha=0.18, lw=0)
            main += [(x, hi), (x, lo)]
        elif done:  # seeds without a common x range: draw each
            other = done + other
        for run, (x, y) in other:
            ax.plot(x, y, color=col, ls=":", lw=1.2, alpha=0.9, marker="x" if x.size <= 30 else None, ms=8 if short else 4,
                    label=label(f"{v.name} seed {run.seed} ({run.status})"))
            extra.append((x, y))
    if not main and not extra:
        return None
    clipped = _focus_ylim(ax, main, extra)
    if logx:
        ax.set_xscale("log")
    ax.set_title(title + ("  [y-axis clipped]" if clipped else "")
                 + (f"\n(only {n} point{'s' if n != 1 else ''} per run: a short run, no curve to read; markers)" if short else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", loc="upper right")
    if short:
        ax.margins(x=0.3, y=0.3)  # a lone point sits in the middle, not on the frame
    return _png(fig)


def by_step(smooth: bool = False) -> XY:
    def xy(variant: Variant, c: Curve):
        y = ema(c.loss, min(100, max(2, c.loss.size // 10))) if smooth else c.loss
        return c.steps, y
    return xy


def by_flops(variant: Variant, c: Curve):
    if c.tokens is None or not variant.flops_per_token:
        return None
    x = c.tokens * variant.flops_per_token
    keep = x > 0  # log axis
    return x[keep], c.loss[keep]


def _categories(ax, summaries: list[VariantSummary], ns: list[int]) -> None:
    short = [s.variant.name if len(s.variant.name) <= 24 else s.variant.name[:23] + "…" for s in summaries]
    names = [label(f"{name}\n(n={n})") for name, n in zip(short, ns)]
    long = len(summaries) > 5 or max(len(name) for name in short) > 14
    ax.set_xticks(range(len(summaries)), names, rotation=25 if long else 0, ha="right" if long else "center")
    ax.set_xlim(-0.6, len(summaries) - 0.4)


def _seed_points(ax, i: int, values: list[float], col) -> None:
    offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
    ax.scatter(i + offsets, values, s=28, facecolors="white", edgecolors=col, linewidths=1.4, zorder=3)


def _legend(ax, mean: Artist, baseline: bool = False, floor: bool = False) -> None:
    """Grey proxy entries: the colours already name the variants on the x axis."""
    handles = [mean, Line2D([], [], color="dimgrey", marker="o", mfc="white", lw=0, label="individual seeds")]
    if baseline:
        handles.append(Line2D([], [], color="grey", ls="--", lw=1, label="baseline mean"))
    if floor:
        handles.append(Line2D([], [], color="#c62828", ls=":", lw=1.5, label="unigram floor"))
    ax.legend(handles=handles, fontsize="small", loc="upper center", ncols=len(handles))


def _done_values(v: Variant, attr: str) -> list[float]:
    return [getattr(r, attr) for r in v.runs if r.status == COMPLETED and getattr(r, attr) is not None]


UNPAIRED_TITLE = ("Final validation loss per variant, unpaired: mean ± std over seeds\n"
                  "(each variant on its own, seed-to-seed noise included: not what the verdict tests)")


def draw_final_losses(ax, summaries: list[VariantSummary], floor: float | None = None) -> None:
    """Mean final val loss ± std per variant (table order), each completed seed as a hollow point: each variant's
    spread on its own, which includes the seed-to-seed variation the paired differences cancel. floor: the unigram
    val loss, drawn where a variant has not learned (it sits near it)."""
    for i, s in enumerate(summaries):
        vals, col = _done_values(s.variant, "final_val_loss"), colour(s.variant.index)
        if not vals:
            continue
        ax.errorbar(i, s.val_loss.mean, yerr=s.val_loss.std or 0.0, fmt="s", ms=8, color=col, capsize=8,
                    elinewidth=2, zorder=2)
        _seed_points(ax, i, vals, col)
        if s.is_baseline:
            ax.axhline(s.val_loss.mean, color="grey", ls="--", lw=1, zorder=1)
    if floor is not None:
        ax.axhline(floor, color="#c62828", ls=":", lw=1.5, zorder=1)
    _categories(ax, summaries, [s.val_loss.n for s in summaries])
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.18 * (high - low))  # headroom for the legend
    ax.set_title(UNPAIRED_TITLE, fontsize="medium")
    ax.set_ylabel("validation loss (nats / token)")
    _legend(ax, Line2D([], [], color="dimgrey", marker="s", lw=2, label="mean ± std"),
            baseline=any(s.is_baseline and s.val_loss.n for s in summaries), floor=floor is not None)


def final_loss_plot(summaries: list[VariantSummary], floor: float | None = None) -> bytes | None:
    """draw_final_losses as a figure of its own; None without a completed seed."""
    if not any(s.val_loss.n for s in summaries):
        return None
    fig, ax = _figure(max(8.0, 1.1 * len(summaries) + 2), 3.6)
    draw_final_losses(ax, summaries, floor)
    return _png(fig)


def throughput_plot(summaries: list[VariantSummary]) -> bytes | None:
    """Mean wall-clock throughput per variant, std error bars, completed seeds as points. Each run was timed on
    its own, under whatever else the machine ran then: the paired timing (speed.py) is what ranks speed."""
    if not any(s.tokens_per_sec.n for s in summaries):
        return None
    fig, ax = _figure(max(6.0, 1.1 * len(summaries) + 2), 5.0)
    for i, s in enumerate(summaries):
        vals, col = _done_values(s.variant, "tokens_per_sec"), colour(s.variant.index)
        if not vals:
            continue
        ax.bar(i, s.tokens_per_sec.mean, width=0.6, color=col, alpha=0.85, yerr=s.tokens_per_sec.std or 0.0,
               capsize=6, zorder=2)
        _seed_points(ax, i, vals, "black")
    _categories(ax, summaries, [s.tokens_per_sec.n for s in summaries])
    ax.grid(False, axis="x")
    ax.set_title("Wall-clock training throughput per run (not a paired timing)")
    ax.set_ylabel("throughput (tokens / s)")
    ax.set_ylim(0, 1.2 * max((s.tokens_per_sec.max or 0.0) for s in summaries))  # headroom for the legend
    _legend(ax, Patch(facecolor="lightgrey", edgecolor="dimgrey", label="mean ± std"))
    return _png(fig)


@dataclass
class Plot:
    name: str  # file stem under plots/
    title: str
    png: bytes | None
    skipped: str | None = None  # why there is no figure
    note: str | None = None  # what to know when reading it (a curve of one or two points)


def make_plots(results: Results, curves: CurveMap, summaries: list[VariantSummary]) -> list[Plot]:
    no_val = "no run has validation points in a metrics.json"
    specs = [
        ("val_loss_vs_step", "Validation loss vs step",
         lambda: curve_plot(results, curves, "val", by_step(), title="Validation loss vs step",
                            xlabel="training step", ylabel="validation loss (nats / token)"), no_val),
        ("val_loss_vs_flops", "Validation loss vs training FLOPs",
         lambda: curve_plot(results, curves, "val", by_flops, title="Validation loss vs training compute",
                            xlabel="training FLOPs (tokens × FLOPs/token, log scale)",
                            ylabel="validation loss (nats / token)", logx=True),
         "no validation points with token counts, or no FLOPs/token in results.json"),
        ("train_loss_vs_step", "Training loss vs step (EMA-smoothed)",
         lambda: curve_plot(results, curves, "train", by_step(smooth=True),
                            title="Training loss vs step (EMA, span 10% of points)", xlabel="training step",
                            ylabel="training loss (nats / token)"),
         "no run has training points in a metrics.json"),
        ("throughput", "Wall-clock throughput per variant (per run, not paired)", lambda: throughput_plot(summaries),
         "no completed run reports tokens/s"),
    ]
    curve_of = {"val_loss_vs_step": "val", "val_loss_vs_flops": "val", "train_loss_vs_step": "train"}
    out = []
    for name, title, draw, why in specs:
        try:
            png = draw()
        except Exception as e:  # noqa: BLE001 - one bad figure must not cost the researcher the tables
            logger.warning("could not draw %s: %s", name, e, exc_info=True)
            png, why = None, f"drawing failed ({type(e).__name__}: {e}); see the log"
        n = most_points(results, curves, curve_of[name]) if name in curve_of else 0
        note = short_curve_note(n, curve_of[name]) if png and 0 < n <= SHORT else None
        out.append(Plot(name, title, png, None if png else why, note))
    return out
