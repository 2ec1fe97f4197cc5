"""The scaling report: final loss vs training FLOPs per variant across sizes, a power law fitted to each,
the winner at the largest measured compute, and where the fits cross: within the data, up to EXTRAPOLATE (half a
decade, analysis/scaling.py) beyond it as a labelled extrapolation, and further out only as "beyond the data (not
estimable)", never as digits. Each fit is drawn no further than EXTRAPOLATE past its own data."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from . import fmt
from .doc import Block, Bullets, Heading, Image, Para, Span, Table, bold, text
from .load import COMPLETED, Results
from .plots import Plot, _figure, _png, colour, label
from .analysis.scaling import EXTRAPOLATE, PowerLaw, crossings, fit_power_law, reference_compute

NAME = "scaling_loss_vs_flops"
TITLE = "Final validation loss vs training compute (scaling)"
SEARCH = 1000.0  # crossings are looked for this factor beyond the measured compute, to say one lies beyond the data
BEYOND = "beyond the data (not estimable)"


@dataclass
class Arch:
    """One variant of the sweep: its (compute, loss, size) points and fit (or why there is none)."""

    name: str
    index: int  # colour
    points: list[tuple[float, float, str]]
    fit: PowerLaw | None = None
    why: str | None = None

    @property
    def c_max(self) -> float:
        return max(c for c, _, _ in self.points)


@dataclass
class Crossing:
    a: str
    b: str
    compute: float | None  # None: beyond the data, more than EXTRAPOLATE past what both measured (not estimable)
    where: str  # "within the data", "extrapolation: ..." or BEYOND


def collect(results: Results) -> list[Arch]:
    """Completed runs with recorded FLOPs and loss, grouped by variant, each fitted when it can be."""
    archs = []
    for i, name in enumerate(results.archs):
        points = [(r.train_flops, r.final_val_loss, v.size or v.name) for v in results.variants if v.arch == name
                  for r in v.runs if r.status == COMPLETED and r.train_flops and r.final_val_loss]
        archs.append(Arch(name, i, sorted(points)))
    measured = [c for a in archs for c, _, _ in a.points]
    c0 = reference_compute(measured) if measured else 1.0
    for a in archs:
        try:
            a.fit = fit_power_law([c for c, _, _ in a.points], [y for _, y, _ in a.points], c0=c0)
        except (ValueError, RuntimeError) as e:  # too few sizes, or no convergence
            a.why = str(e)
    return archs


def find_crossings(archs: list[Arch], baseline: str | None) -> tuple[list[Crossing], list[str]]:
    """Crossings of each variant's fit with the baseline's (every pair without one), and the pairs that
    do not cross in the searched range."""
    fitted = [a for a in archs if a.fit]
    base = next((a for a in fitted if a.name == baseline), None)
    pairs = [(base, a) for a in fitted if a is not base] if base else list(itertools.combinations(fitted, 2))
    found, none = [], []
    for a, b in pairs:
        lo_in, hi_in = max(a.fit.c_min, b.fit.c_min), min(a.fit.c_max, b.fit.c_max)
        lo, hi = min(a.fit.c_min, b.fit.c_min) / SEARCH, max(a.fit.c_max, b.fit.c_max) * SEARCH
        here = []
        for c in crossings(a.fit, b.fit, lo, hi):
            if lo_in <= c <= hi_in:
                here.append(Crossing(a.name, b.name, c, "within the data"))
            elif hi_in < c <= hi_in * EXTRAPOLATE:
                here.append(Crossing(a.name, b.name, c, f"extrapolation: {c / hi_in:.3g}× beyond the compute both measured"))
            elif lo_in / EXTRAPOLATE <= c < lo_in:
                here.append(Crossing(a.name, b.name, c, f"extrapolation: {lo_in / c:.3g}× below the compute both measured"))
            elif not any(x.compute is None for x in here):  # how far out is not estimable: said once per pair
                here.append(Crossing(a.name, b.name, None, BEYOND))
        found += here
        if not here:
            none.append(f"{a.name} and {b.name}: the fits do not cross between {fmt.human_flops(lo)} and "
                        f"{fmt.human_flops(hi)} FLOPs")
    return found, none


def _pm(value: float, err: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}g}" + (f" ± {err:.2g}" if err is not None else " (no σ)")


def fit_table(archs: list[Arch]) -> Table:
    rows = []
    for a in archs:
        if a.fit is None:
            rows.append([a.name, str(len(a.points))] + [fmt.DASH] * 4 + [a.why or ""])
            continue
        f = a.fit
        rows.append([a.name, str(f.n), _pm(f.E, f.E_err, 4), _pm(f.A, f.A_err), _pm(f.alpha, f.alpha_err),
                     f"{f.rmse:.4f}", f"{fmt.human_flops(f.c_min)} – {fmt.human_flops(f.c_max)}"])
    return Table(["Variant", "Points", "E (irreducible loss)", "A", "α", "RMSE", "Compute range / note"], rows,
                 right={1, 2, 3, 4, 5})


def winner(archs: list[Arch]) -> list[Span] | None:
    """Which fitted variant has the lowest loss at the largest compute any run measured; a fit whose data end more
    than EXTRAPOLATE below it is not read there (not estimable)."""
    fitted = [a for a in archs if a.fit]
    if len(fitted) < 2:
        return None
    top = max(a.c_max for a in fitted)
    values = sorted(((float(a.fit(top)), a) for a in fitted if a.c_max * EXTRAPOLATE >= top), key=lambda p: p[0])
    far = [a.name for a in fitted if a.c_max * EXTRAPOLATE < top]
    spans: list[Span] = [bold(f"At the largest measured compute ({fmt.human_flops(top)} FLOPs) "),
                         text("the fits rank: " + ", ".join(f"{a.name} {v:.4f}" for v, a in values))]
    if len(values) >= 2:
        (best, first), (second, _) = values[0], values[1]
        spans.append(text(f"; {first.name} wins by {second - best:.4f} nats/token."))
    else:
        spans.append(text("."))
    extrapolated = [a.name for _, a in values if a.c_max < top]
    if extrapolated:
        spans.append(text(f" ({', '.join(extrapolated)} extrapolated to reach it.)"))
    if far:
        spans.append(text(f" {', '.join(far)}: {BEYOND} there, its data ending more than {EXTRAPOLATE:.2g}× below."))
    return spans


def _log_ticks(ax, values: list[float]) -> None:
    """Log-scale y with ~6 readable ticks over ``values`` (a loss spans far less than a decade)."""
    lo, hi = min(values), max(values)
    pad = (hi / lo) ** 0.05 if hi > lo else 1.01
    ax.set_ylim(lo / pad, hi * pad)
    ticks = np.geomspace(lo / pad, hi * pad, 6)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3f}"))
    ax.yaxis.set_minor_locator(NullLocator())


def scaling_plot(archs: list[Arch], found: list[Crossing]) -> bytes | None:
    """Points (one per run), each fit solid over its data and dashed beyond, crossings marked; log-log."""
    if not any(a.points for a in archs):
        return None
    fig, ax = _figure(10.0, 5.5)
    measured = [c for a in archs for c, _, _ in a.points]
    lo, hi = min(measured) / 1.5, max(measured) * 1.5
    shown = [x for x in found if x.compute is not None]  # within EXTRAPOLATE of the data by find_crossings
    if shown:
        lo, hi = min([lo] + [x.compute / 1.5 for x in shown]), max([hi] + [x.compute * 1.5 for x in shown])
    ys = [y for a in archs for _, y, _ in a.points]
    for a in archs:
        col = colour(a.index)
        if a.points:
            c, y, _ = zip(*a.points)
            ax.scatter(c, y, color=col, s=36, zorder=3, edgecolors="white", linewidths=0.6,
                       label=None if a.fit else label(f"{a.name} (no fit)"))
        if a.fit:
            f = a.fit
            inside = np.geomspace(f.c_min, f.c_max, 200)
            ax.plot(inside, f(inside), color=col, lw=2,
                    label=label(f"{a.name}: L = {f.E:.2f} + {f.A:.3g}·(C/{f.c0:.0e})^-{f.alpha:.3f}"))
            for start, end in ((max(lo, f.c_min / EXTRAPOLATE), f.c_min), (f.c_max, min(hi, f.c_max * EXTRAPOLATE))):
                if start >= end:
                    continue
                seg = np.geomspace(start, end, 100)
                ax.plot(seg, f(seg), color=col, lw=1.5, ls="--")
                ys += [float(f(seg).min()), float(f(seg).max())]
    for x in shown:
        fit = next(a.fit for a in archs if a.name == x.a)
        y = float(fit(x.compute))
        ax.plot([x.compute], [y], marker="X", ms=11, color="black", zorder=4, lw=0)
        tag = "crossing" if x.where == "within the data" else "crossing (extrapolated)"
        ax.annotate(f"{tag}\n{fmt.human_flops(x.compute)} FLOPs", (x.compute, y), xytext=(8, 10),
                    textcoords="offset points", fontsize="small")
    for a in archs[:1]:  # size names once, next to the first variant's points
        for c, y, size in a.points:
            ax.annotate(size, (c, y), xytext=(4, -11), textcoords="offset points", fontsize="x-small", color="dimgrey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    _log_ticks(ax, ys)
    ax.set_title(TITLE)
    ax.set_xlabel("training FLOPs (log scale)")
    ax.set_ylabel("final validation loss (nats / token, log scale)")
    if any(a.fit for a in archs):
        ax.plot([], [], color="grey", ls="--", label=f"fit, extrapolated (at most {EXTRAPOLATE:.2g}× beyond the variant's data)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def scaling_section(results: Results) -> tuple[list[Block], Plot | None]:
    """The section and its plot; ([], None) when the experiment has no sizes."""
    if not results.sizes or not any(v.size for v in results.variants):
        return [], None
    archs = collect(results)
    found, none = find_crossings(archs, results.baseline)
    rows = []
    for v in results.variants:
        done = [r for r in v.runs if r.status == COMPLETED]
        loss = [r.final_val_loss for r in done if r.final_val_loss is not None]
        flops = [r.train_flops for r in done if r.train_flops]
        model = v.config.get("model") or {}
        shape = " × ".join(str(model.get(k, "?")) for k in ("dim", "n_layers", "n_heads"))
        rows.append([v.arch, v.size or fmt.DASH, shape, fmt.human(v.params), fmt.human_flops(v.flops_per_token),
                     fmt.human_flops(sum(flops) / len(flops)) if flops else fmt.DASH,
                     fmt.number(sum(loss) / len(loss)) if loss else fmt.DASH, str(len(done))])
    statements: list[list[Span]] = []
    top = winner(archs)
    if top:
        statements.append(top)
    for x in found:
        statements.append([bold(f"{x.a} and {x.b} cross "),
                           text(f"{BEYOND}: more than {EXTRAPOLATE:.2g}× past the compute both measured." if x.compute is None
                                else f"at {fmt.human_flops(x.compute)} FLOPs ({x.where}).")])
    statements += [[text(line + ".")] for line in none]
    png = scaling_plot(archs, found)
    plot = Plot(NAME, TITLE, png, None if png else "no completed run records training FLOPs and a final loss")
    c0 = next((a.fit.c0 for a in archs if a.fit), None)
    blocks: list[Block] = [
        Heading(2, "Scaling"),
        Table(["Variant", "Size", "dim × layers × heads", "Params", "FLOPs/token", "Training FLOPs", "Val loss",
               "Runs"], rows, right={3, 4, 5, 6, 7}),
        Para([text("Fit per variant, over every completed run (one point each): L(C) = E + A · (C / c0)^(−α), "
                   f"C = training FLOPs, c0 = {fmt.human_flops(c0) if c0 else '—'} FLOPs; least squares "
                   "(scipy curve_fit, 0 ≤ E ≤ min loss, A ≥ 0, 0 ≤ α ≤ 5); ± is one standard error from the fit's "
                   "covariance (none with only three points: three parameters leave no residual). With few points per variant, E and A trade off: read α and the ranking, not E alone.")]),
        fit_table(archs),
    ]
    if statements:
        blocks.append(Bullets(statements))
    blocks += [Heading(3, TITLE),
               Image(TITLE, f"plots/{NAME}.png", png) if png else Para([text(f"Skipped: {plot.skipped}.")])]
    return blocks, plot
