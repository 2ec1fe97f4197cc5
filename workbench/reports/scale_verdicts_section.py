"""The report's "Verdicts across scale": each arch's verdict, Δ and compute multiplier at every size of a sweep,
where its Δ changes sign (scale_verdicts.py), and both plotted against training compute."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from . import fmt
from .doc import Block, Bullets, Heading, Image, Para, Span, Table, bold, text
from .load import Results
from .plots import Plot, _figure, _png, colour, label
from .analysis.scale_verdicts import EXTRAPOLATE
from .analysis.verdicts import Multiplier

MULTIPLIER = ("multiplier_vs_compute", "Compute multiplier vs training compute")
DELTA = ("delta_vs_compute", "Δ val loss vs training compute")


def _multiplier(m: dict | None) -> Multiplier | None:
    return None if m is None else Multiplier(m["mean"], m["low"], m["high"], [], m["extrapolated"])


def _crossing_text(arch: str, entry: dict) -> list[Span]:
    x = entry["crossing"]
    if x is None:
        return [bold(f"{arch}: "), text(entry["crossing_note"] + ".")]
    how = "extrapolated" if x["extrapolated"] else "interpolated"
    return [bold(f"{arch}: Δ = 0 at {fmt.human_flops(x['compute'])} FLOPs ({how}) "),
            text(f"— {entry['crossing_note']}.")]


def _plot(results: Results, scale: dict, value, ylabel: str, title: str, at: float, logy: bool) -> bytes | None:
    """Per arch, value(row) -> (y, low, high) or None with interval bars against log compute (archs nudged apart),
    a line at ``at``, and where Δ changes sign marked on it (an extrapolated one reached by a dotted line)."""
    series = []
    for k, (arch, entry) in enumerate(scale.items()):
        pts = [(r["compute"], *value(r)) for r in entry["by_size"] if r["compute"] and value(r)]
        series.append((k, arch, entry["crossing"], pts))
    if not any(pts for *_, pts in series):
        return None
    fig, ax = _figure(9.0, 5.0)
    xs, ys, centres = [], [at], [at]
    for k, arch, x, pts in series:
        col = colour(results.archs.index(arch))
        if pts:
            nudge = 10 ** (0.015 * (k - (len(series) - 1) / 2))
            c, y, lo, hi = (np.array(v, dtype=float) for v in zip(*pts))  # None (no interval) -> nan -> no bar
            ax.errorbar(c * nudge, y, yerr=np.nan_to_num([y - lo, hi - y]), fmt="o-", color=col, capsize=4, lw=1.5,
                        label=label(arch))
            xs += list(c)
            ys += [v for v in np.concatenate([y, lo, hi]) if np.isfinite(v)]
            centres += list(y)
        if x:
            how = "extrapolated" if x["extrapolated"] else "interpolated"
            if x["extrapolated"] and pts:
                ax.plot([pts[-1][0], x["compute"]], [pts[-1][1], at], color=col, ls=":", lw=1.5)
            ax.plot([x["compute"]], [at], marker="X", ms=11, color=col, lw=0, zorder=4,
                    label=label(f"{arch}: Δ = 0 at {fmt.human_flops(x['compute'])} FLOPs ({how})"))
            xs.append(x["compute"])
    ax.axhline(at, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 2, max(xs) * 2)
    # Two-seed intervals can be 10x wider than every estimate: the axis follows the estimates (intervals
    # reaching past it are cut at the frame, and the title says so), not the widest bar.
    if logy:
        floor, ceiling = min(centres) / 4, max(centres) * 4
    else:
        pad = max(max(centres) - min(centres), 0.05)
        floor, ceiling = min(centres) - 2 * pad, max(centres) + 2 * pad
    if min(ys) < floor or max(ys) > ceiling:
        ys = [min(max(v, floor), ceiling) for v in ys]
        title += " (intervals cut at the frame)"
    if logy:
        ax.set_yscale("log")
        ticks = np.geomspace(min(ys) / 1.05, max(ys) * 1.05, 6)
        ax.set_ylim(ticks[0], ticks[-1])
        inner = 1 + int(np.argmin(np.abs(np.log(ticks[1:-1] / at))))
        ticks[inner] = at  # the no-effect line gets its own label (1x), not a neighbour's
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}x"))
        ax.yaxis.set_minor_locator(NullLocator())
    else:
        ax.set_ylim(min(ys) - 0.02 * pad, max(ys) + 0.02 * pad)
    ax.set_title(title)
    ax.set_xlabel("training FLOPs of the run group compared with (log scale)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", loc="best")
    return _png(fig)


def _delta(r: dict):
    return None if r["mean"] is None else (r["mean"], r["low"], r["high"])


def _mult(r: dict):
    m = r["multiplier"]
    return None if m is None else (m["mean"], m["low"], m["high"])


def scale_verdicts_section(results: Results, scale: dict) -> tuple[list[Block], list[Plot]]:
    """The section and its two plots (a plot without data as skipped, so a stale figure is removed); [] blocks
    without a sweep of two sizes or more."""
    against = "previous rung" if results.ladder else "baseline"
    plots = []
    for (name, title), value, ylabel, at, logy in (
            (MULTIPLIER, _mult, f"compute multiplier vs {against} (log scale)", 1.0, True),
            (DELTA, _delta, f"Δ val loss vs {against} (nats / token)", 0.0, False)):
        png = _plot(results, scale, value, ylabel, title, at, logy) if scale else None
        plots.append(Plot(name, title, png, None if png else "no comparison has a value and a training compute"))
    if not scale:
        return [], plots
    rows = [[arch, r["size"], fmt.human_flops(r["compute"]), r["verdict"], fmt.interval(r["mean"], r["low"], r["high"]),
             fmt.multiplier(_multiplier(r["multiplier"]))] for arch, entry in scale.items() for r in entry["by_size"]]
    blocks: list[Block] = [
        Heading(2, "Verdicts across scale"),
        Para([text(f"Each {'rung' if results.ladder else 'variant'} against the {against} at every size: its verdict, "
                   "Δ val loss with the interval of the Results table, and compute multiplier, against the training "
                   f"FLOPs of the {against} there. Where Δ changes sign is read off the Δ means, linearly in log "
                   "compute: interpolated between the sizes where the sign changes (the last such pair), else "
                   f"extended from the last two sizes when Δ shrinks towards zero (extrapolated, up to {EXTRAPOLATE:g}× "
                   "the largest compute). It is a point estimate: an effect whose intervals include 0 has no resolved "
                   "sign to change. The plots mark it on the Δ = 0 line and on the 1x multiplier line.")]),
        Table([("Rung" if results.ladder else "Variant"), "Size", "Training FLOPs", "Verdict",
               f"Δ val loss vs {against} [interval]", "Compute multiplier"], rows, right={2, 4, 5}),
        Bullets([_crossing_text(arch, entry) for arch, entry in scale.items()]),
    ]
    for p in plots:
        blocks += [Heading(3, p.title),
                   Image(p.title, f"plots/{p.name}.png", p.png) if p.png else Para([text(f"Skipped: {p.skipped}.")])]
    return blocks, plots
