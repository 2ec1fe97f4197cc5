"""The report's "Verdicts across scale": each arch's verdict, Δ and compute multiplier at every size of a sweep,
where its Δ changes sign, both plotted against training compute, and how often each smaller size orders the pairs of
variants as the largest does (decision accuracy); the numbers are scale_verdicts.py's."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from . import fmt
from .doc import Block, Bullets, Heading, Image, Para, Span, Table, bold, text
from .load import Results
from .plots import Plot, _figure, _png, colour, label
from .analysis.scaling import EXTRAPOLATE
from .analysis.estimable import not_estimable
from .analysis.multipliers import Multiplier
from .analysis.verdicts import NOT_LEARNED

MULTIPLIER = ("multiplier_vs_compute", "Compute multiplier vs training compute")
DELTA = ("delta_vs_compute", "Δ val loss vs training compute")


def _delta_text(r: dict) -> str:
    """A stored row's Δ with its interval, or 'not estimable at n = k' beside the mean where it has none ('no
    interval: not learned yet' where no test was taken)."""
    if r["mean"] is not None and r["verdict"] == NOT_LEARNED:
        return f"{r['mean']:+.{fmt.LOSS_DIGITS}f} (no interval: {NOT_LEARNED})"
    if r["mean"] is not None and r["low"] is None:
        return f"{r['mean']:+.{fmt.LOSS_DIGITS}f} ({not_estimable(r.get('n'))})"
    return fmt.interval(r["mean"], r["low"], r["high"])


def _multiplier_text(m: dict | None) -> str:
    """A stored row's compute multiplier, as fmt.multiplier prints one (n seeds behind it)."""
    if m is None:
        return fmt.DASH
    return fmt.multiplier(Multiplier(m["mean"], m["low"], m["high"], [m["mean"]] * (m.get("n") or 0), m["extrapolated"]))


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
    """A row's Δ to draw; none between models that have not learned."""
    return None if r["mean"] is None or r["verdict"] == NOT_LEARNED else (r["mean"], r["low"], r["high"])


def _mult(r: dict):
    m = r["multiplier"]
    return None if m is None else (m["mean"], m["low"], m["high"])


def share(counts: dict, none: str) -> str:
    """'67% (2 of 3)', or ``none`` when nothing was counted: a share always carries its k and n."""
    return none if not counts["n"] else f"{counts['share']:.0%} ({counts['agree']} of {counts['n']})"


def _signed(delta: float | None) -> str:
    return fmt.DASH if delta is None else f"{delta:+.{fmt.LOSS_DIGITS}f}"


def _holds(flag: bool | None) -> str:
    return fmt.DASH if flag is None else "yes" if flag else "no"


def _order(pair: dict) -> str:
    """Whether the pair's order holds: yes / no, 'tie' where a Δ is exactly 0, — where one is missing."""
    if pair["agrees"] is None and 0 in (pair["delta"], pair["target_delta"]):
        return "tie"
    return _holds(pair["agrees"])


def agreement_blocks(agreement: dict | None, against: str) -> list[Block]:
    """Decision accuracy: per smaller size, the share of pairs ordered as at the target and of decided verdicts
    that hold there, then every pair; [] without one."""
    if not agreement:
        return []
    target = agreement["target"]
    summary = [[e["size"], share(e["pairs"], "no ordered pairs"), share(e["decided"], "no decided verdicts")]
               for e in agreement["by_size"]]
    pairs = [[e["size"], f"{p['second']} − {p['first']}", _signed(p["delta"]), p["verdict"] or fmt.DASH,
              _signed(p["target_delta"]), _order(p), _holds(p["verdict_holds"])]
             for e in agreement["by_size"] for p in e["list"]]
    return [
        Heading(3, f"Decision accuracy: does a smaller size order the variants as {target} does?"),
        Para([text(f"Every pair of variants, the {'earlier rung' if against == 'previous rung' else against} first: "
                   "Δ is the second's mean final val "
                   "loss minus the first's over the seeds both completed. A pair's order holds when its Δ at the "
                   f"smaller size has the sign of its Δ at {target}, the largest point (most training FLOPs); DataDecide "
                   "(Magnusson et al. 2025) calls the share decision accuracy. A decided verdict (better or worse at "
                   f"the smaller size) holds when Δ at {target} has the decided sign. Pairs without a Δ at either point, "
                   "ties (Δ exactly 0) and pairs with a model that has not learned (final loss not clearly below the "
                   "unigram floor) are not counted. Each share gives its k of n: a few pairs say little.")]),
        Table(["Size", f"Pairs ordered as at {target}", f"Decided verdicts that hold at {target}"], summary),
        Table(["Size", "Pair (Δ = second − first)", "Δ there", "Verdict there", f"Δ at {target}", "Order holds",
               "Verdict holds"], pairs, right={2, 4}),
    ]


def scale_verdicts_section(results: Results, scale: dict) -> tuple[list[Block], list[Plot]]:
    """The section and its two plots (a plot without data as skipped, so a stale figure is removed); [] blocks
    without a sweep of two sizes or more. ``scale``: scale_summary()'s {"by_arch", "agreement"}, or {}."""
    against = "previous rung" if results.ladder else "baseline"
    archs = scale.get("by_arch") or {}
    plots = []
    for (name, title), value, ylabel, at, logy in (
            (MULTIPLIER, _mult, f"compute multiplier vs {against} (log scale)", 1.0, True),
            (DELTA, _delta, f"Δ val loss vs {against} (nats / token)", 0.0, False)):
        png = _plot(results, archs, value, ylabel, title, at, logy) if archs else None
        plots.append(Plot(name, title, png, None if png else "no comparison has a value and a training compute"))
    if not scale:
        return [], plots
    rows = [[arch, r["size"], fmt.human_flops(r["compute"]), r["verdict"], _delta_text(r),
             _multiplier_text(r["multiplier"])] for arch, entry in archs.items() for r in entry["by_size"]]
    blocks: list[Block] = [
        Heading(2, "Verdicts across scale"),
        Para([text(f"Each {'rung' if results.ladder else 'variant'} against the {against} at every size: its verdict, "
                   "Δ val loss with the interval of the Results table, and compute multiplier, against the training "
                   f"FLOPs of the {against} there. Where Δ changes sign is read off the Δ means, linearly in log "
                   "compute: interpolated between the sizes where the sign changes (the last such pair), else "
                   f"extended from the last two sizes when Δ shrinks towards zero (extrapolated, up to {EXTRAPOLATE:.2g}× "
                   "the largest compute; further out it is beyond the data, not estimable), from the sizes where both models have learned. It is a point estimate: an "
                   "effect whose intervals include 0 has no resolved "
                   "sign to change. The plots mark it on the Δ = 0 line and on the 1x multiplier line.")]),
    ]
    if archs:
        blocks += [Table([("Rung" if results.ladder else "Variant"), "Size", "Training FLOPs", "Verdict",
                          f"Δ val loss vs {against} [interval]", "Compute multiplier"], rows, right={2, 4, 5}),
                   Bullets([_crossing_text(arch, entry) for arch, entry in archs.items()])]
    blocks += agreement_blocks(scale.get("agreement"), against)
    for p in plots:
        blocks += [Heading(3, p.title),
                   Image(p.title, f"plots/{p.name}.png", p.png) if p.png else Para([text(f"Skipped: {p.skipped}.")])]
    return blocks, plots
