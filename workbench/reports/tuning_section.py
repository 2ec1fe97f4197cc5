"""The report's tuning section (``tune:``): each variant's grid, its optimum and sensitivity, how the optimum
moves with size, and final loss vs the tuned value plotted per variant.

It reads ``results.tuning`` (``analysis.tuning``): the same decisions the runner made, so the report shows
the grid point each verdict ran at, and flags an optimum on the grid's edge rather than calling it interior.
With ``tune: {at: smallest}`` it says which sizes were tuned and which trained at a smaller size's optimum
(``transfer_lines``, which the run summary prints too).
"""

from __future__ import annotations

import logging

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from . import fmt
from .analysis.tuning import HIGH, Tuning, sensitivity_difference
from .doc import Block, Heading, Image, Para, Table, code, text
from .load import Results, Variant
from .plots import DPI, Plot, _png, colour, label

logger = logging.getLogger(__name__)
NAME = "tuning"
TITLE = "Final validation loss vs the tuned value"  # the section's plot names the key


def quantity(key: str) -> str:
    """The tuned key in prose: 'learning rate' for train.lr, else the key itself."""
    return "learning rate" if key == "train.lr" else key


def section_title(key: str) -> str:
    return "Learning rate" if key == "train.lr" else f"Tuned {key}"


def value_text(value: float | None) -> str:
    """A grid value, 3 significant digits: 7.5e-4, 1.2e-2, 0.3, 20."""
    if value is None:
        return fmt.DASH
    if value == 0 or 0.1 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return np.format_float_scientific(value, precision=2, trim="-", exp_digits=1)


def edge_text(t: Tuning) -> str:
    if t.edge is None:
        return ""
    side = "above" if t.edge == HIGH else "below"
    return f"on the {t.edge} edge: the optimum may lie {side} the grid"


TRANSFERS = {"mup": ("μP", "width"), "completep": ("CompleteP", "width and depth")}  # config/transfer.py


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def transfer_lines(results: Results) -> list[str]:
    """'tuned at d64 only; d128 and d256 trained at d64's optimum, their own not measured (μP is to carry the
    learning rate across width: docs/findings.md measures how far it does)', one line per distinct plan
    (variants that share one share the line); [] when no size trains at another's optimum."""
    grid = {v.cell: v for v in results.grid}
    plans: dict[tuple, list[str]] = {}
    for cell, t in results.tuning.items():
        source = grid.get(t.transferred_from) if t.transferred_from else None
        if source is None:
            continue
        scheme = (source.config.get("model") or {}).get("parametrization", "standard")
        plan = plans.setdefault((source.arch, source.size, scheme), [])
        plan.append(cell[len(source.arch) + 1:])
    by_text: dict[str, list[str]] = {}
    for (arch, small, scheme), larger in plans.items():
        name, across = TRANSFERS.get(scheme, (scheme, "what the sizes change"))
        whose = "its" if len(larger) == 1 else "their"
        text_ = (f"tuned at {small} only; {_and(larger)} trained at {small}'s optimum, {whose} own not measured ({name} "
                 f"is to carry the {quantity(next(iter(results.tuning.values())).key)} across {across}: "
                 "docs/findings.md measures how far it does)")
        by_text.setdefault(text_, []).append(arch)
    archs = list(dict.fromkeys(v.arch for v in results.grid))
    return [line if len(users) == len(archs) else f"{', '.join(users)}: {line}" for line, users in by_text.items()]


def _groups(results: Results) -> dict[str, list[Variant]]:
    """Each cell's grid-point run groups."""
    out: dict[str, list[Variant]] = {}
    for v in results.grid:
        out.setdefault(v.cell, []).append(v)
    return out


def _grid_text(groups: list[Variant], t: Tuning) -> str:
    """'7.5e-4 .. 1.2e-2 (5) + 1 above': the configured grid and the extensions run."""
    grid = sorted(v.tuned["value"] for v in groups if v.tuned["step"] == 0)
    out = f"{value_text(grid[0])} .. {value_text(grid[-1])} ({len(grid)})" if grid else fmt.DASH
    below, above = sum(p.step < 0 for p in t.points), sum(p.step > 0 for p in t.points)
    return out + (f" + {below} below" if below else "") + (f" + {above} above" if above else "")


def status_text(t: Tuning, groups: list[Variant]) -> str:
    """'tuning: 3 of 5 points run; no verdict yet' while incomplete; else what went wrong on the grid, or 'complete'."""
    if not t.complete:
        steps = {v.name: v.tuned["step"] for v in groups}
        sides = [s for s, hit in (("below", any(steps.get(g, 0) < 0 for g in t.pending)),
                                  ("above", any(steps.get(g, 0) > 0 for g in t.pending))) if hit]
        extending = f" (extending the grid {' and '.join(sides)}: the optimum so far is on its edge)" if sides else ""
        return f"tuning: {len(t.points)} of {len(t.points) + len(t.pending)} points run{extending}; no verdict yet"
    parts = [t.note] if t.note else []
    if t.failed:
        parts.append("failed at " + ", ".join(value_text(v) for v in t.failed) + " (left out of the grid)")
    diverged = [p.value for p in t.points if any(p.diverged)]
    if diverged and len(diverged) < len(t.points):
        parts.append("diverged at " + ", ".join(value_text(v) for v in diverged) + " (counted as the loss at init)")
    return "; ".join(parts) or "complete"


def _transfer_row(cell: str, t: Tuning) -> list[str]:
    """A size that ran no grid: the value its verdict seeds ran at, and where it came from."""
    status = (f"transferred from {t.transferred_from} (tune.at: smallest)" if t.best is not None
              else f"{t.note}; no verdict" if t.note else f"waiting for {t.transferred_from}'s tuning; no verdict yet")
    return [cell, f"none ({t.transferred_from}'s optimum)", value_text(t.best), fmt.DASH, fmt.DASH, fmt.DASH, edge_text(t), status]


def tuning_table(results: Results) -> Table:
    groups = _groups(results)
    rows = [_transfer_row(cell, t) if t.transferred_from else
            [cell, _grid_text(groups.get(cell, []), t), value_text(t.best),
             value_text(t.fitted) + (" (no fit)" if t.fitted is not None and t.fitted_loss is None else ""),
             fmt.number(t.best_loss), fmt.number(t.sensitivity), edge_text(t), status_text(t, groups.get(cell, []))]
            for cell, t in results.tuning.items()]
    headers = ["Variant", "Grid (configured + extensions run)", "Chosen value (verdicts run here)", "Fitted optimum",
               "Tuning loss at chosen value", "Sensitivity (nats)", "Edge", "Status"]
    return Table(headers, rows, right={2, 3, 4, 5})


def _seeds(results: Results) -> int:
    """Tuning seeds per grid point (as load.py reads them)."""
    return len([s for s in (results.tune or {}).get("tuning_seeds") or [] if isinstance(s, int)]) or 1


def method_blocks(results: Results) -> list[Block]:
    key = next(iter(results.tuning.values())).key
    n, extend = _seeds(results), (results.tune or {}).get("extend")
    init = sorted({round(t.init_loss, 2) for t in results.tuning.values()})
    beyond = (f"; an optimum on the grid's edge adds up to {extend} more point(s) on that side, and one still on the "
              "edge after those is flagged" if isinstance(extend, int) and extend > 0 else
              "; an optimum on the grid's edge is flagged")
    transfers = transfer_lines(results)
    return [Para([
        text("Every variant was trained at every grid value of "), code(key),
        text(f"{' at its smallest size' if transfers else ''} with {n} tuning seed{'s' if n != 1 else ''}. Its optimum is the minimum of a quadratic in log(value) "
             "through its best point and that point's two neighbours (no fit: the best point itself); the verdicts "
             "compare each variant at its own optimum, the grid point nearest the fitted one, where its verdict seeds "
             f"run{beyond}. A diverged run counts as the loss at init, ln(vocabulary) = "
             f"{', '.join(f'{x:.2f}' for x in init)} nats. Sensitivity (Wortsman et al. 2023) is the mean over the grid "
             "of min(loss, loss at init) − best loss: the loss a variant gives up away from its optimum, lower is "
             "more robust.")])] + [Para([text(line[0].upper() + line[1:] + ".")]) for line in transfers]


def _sensitivity_row(results: Results, cell: str, arch: str, size: str | None) -> list[str] | None:
    if results.baseline is None or arch == results.baseline:
        return None
    base_cell = results.baseline if size is None else f"{results.baseline}@{size}"
    base = results.tuning.get(base_cell)
    if base is None:
        return [cell, base_cell, "no baseline tuning at this size", fmt.DASH, fmt.DASH]
    if not (base.complete and results.tuning[cell].complete):
        return [cell, base_cell, "tuning in progress", fmt.DASH, fmt.DASH]
    d = sensitivity_difference(results.tuning[cell], base)
    if d is None:
        return [cell, base_cell, "not available: fewer than two grid values or tuning seeds in common", fmt.DASH, fmt.DASH]
    return [cell, base_cell, fmt.interval(d.mean, d.low, d.high), str(d.n), str(len(d.values))]


def sensitivity_blocks(results: Results) -> list[Block]:
    """Each variant's sensitivity minus its baseline's, paired by tuning seed; said plainly when one seed cannot bound it."""
    groups = _groups(results)
    rows = [row for cell, g in groups.items() if cell in results.tuning and not results.tuning[cell].transferred_from
            if (row := _sensitivity_row(results, cell, g[0].arch, g[0].size)) is not None]
    if not rows:
        return []
    if _seeds(results) < 2:
        return [Para([text("Sensitivity differences from the baseline are not given: with one tuning seed there is no "
                           "seed-to-seed spread to bound them, so read the sensitivities above as single measurements "
                           "(set "), code("tune.seeds: 2"), text(" or more for a paired interval).")])]
    return [Heading(3, "Sensitivity vs the baseline"),
            Table(["Variant", "Baseline", "Δ sensitivity (nats) [95% interval]", "Tuning seeds (paired)",
                   "Grid values compared"], rows, right={2, 3, 4}),
            Para([text("The variant's sensitivity minus its baseline's, per tuning seed over the grid values both ran, "
                        "with a two-sided 95% t interval (not corrected for multiple comparisons); positive: the "
                        "variant loses more away from its optimum.")])]


def sizes_blocks(results: Results) -> list[Block]:
    """How each arch's fitted optimum moves across the sizes of a sweep."""
    archs = list(dict.fromkeys(v.arch for v in results.grid))
    sizes = [s for s in results.sizes if any(not t.transferred_from for t in
                                             filter(None, (results.tuning.get(f"{a}@{s}") for a in archs)))]
    if len(sizes) < 2:  # one tuned size (tune.at: smallest): nothing moves
        return []
    rows = []
    for arch in archs:
        cells = [results.tuning.get(f"{arch}@{s}") for s in sizes]
        shown = [fmt.DASH if t is None else "tuning" if not t.complete else "no optimum" if t.fitted is None else
                 value_text(t.fitted) + (f" ({t.edge} edge)" if t.edge else "") for t in cells]
        done = [t.fitted for t in cells if t is not None and t.complete and t.fitted]
        ratio = f"{done[-1] / done[0]:.2f}×" if len(done) > 1 else fmt.DASH
        rows.append([arch] + shown + [ratio])
    return [Heading(3, "How the optimum moves with size"),
            Table(["Variant"] + sizes + ["Optimum at largest ÷ smallest size"], rows, right=set(range(1, len(sizes) + 2))),
            Para([text("Fitted optimum at each size, sizes in sweep order. An optimum that moves with size means no "
                       "single value serves every size, and a comparison at a fixed value would favour one of them.")])]


def _panel(ax, results: Results, size: str | None, archs: list[str]) -> None:
    """One size: each variant's tuning loss vs value, diverged points as x, its chosen point starred, the fit ticked."""
    inits, values = set(), set()
    for i, arch in enumerate(archs):
        t = results.tuning.get(arch if size is None else f"{arch}@{size}")
        if t is None or not t.points:
            continue
        col = colour(i)
        inits.add(t.init_loss)
        x = np.array([p.value for p in t.points])
        y = np.array([p.loss(t.init_loss) for p in t.points])
        bad = np.array([any(p.diverged) for p in t.points])
        ax.plot(x, y, color=col, lw=1.8, ls="-" if t.complete else ":")
        ax.plot(x[~bad], y[~bad], "o", color=col, ms=6)
        ax.plot(x[bad], y[bad], "x", color=col, ms=10, mew=2.5)
        if t.best is not None:
            ax.plot([t.best], [t.best_loss], "*", color=col, ms=18, mec="black", mew=0.8, zorder=4)
            if t.edge:
                ax.annotate(f"{t.edge} edge", (t.best, t.best_loss), xytext=(-8 if t.edge == HIGH else 8, 12),
                            textcoords="offset points", fontsize="x-small", color=col,
                            ha="right" if t.edge == HIGH else "left")
        if t.fitted is not None and t.fitted_loss is not None:  # on the curve: the tick marks where, not a loss
            ax.plot([t.fitted], [np.interp(np.log(t.fitted), np.log(x), y)], "|", color=col, ms=22, mew=2.5, zorder=4)
        values |= set(x.tolist())
    for init in inits:
        ax.axhline(init, color="grey", ls="--", lw=1)
    if not values:
        ax.text(0.5, 0.5, "no grid point finished yet", transform=ax.transAxes, ha="center", color="dimgrey")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(values)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: value_text(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(True, which="major", alpha=0.35)
    if size is not None:
        ax.set_title(label(f"size {size}"))


def _legend(fig, results: Results, archs: list[str]) -> None:
    tuning = {v.arch for v in results.grid if v.cell in results.tuning and not results.tuning[v.cell].complete}
    handles = [Line2D([], [], color=colour(i), lw=1.8, label=label(arch + (" (tuning in progress: dotted)"
                                                                          if arch in tuning else "")))
               for i, arch in enumerate(archs)]
    handles += [Line2D([], [], color="dimgrey", marker="*", ms=14, mec="black", lw=0, label="chosen value (verdicts run here)"),
                Line2D([], [], color="dimgrey", marker="|", ms=14, mew=2.5, lw=0, label="fitted optimum (quadratic in log value)"),
                Line2D([], [], color="dimgrey", marker="x", ms=9, mew=2.5, lw=0, label="diverged (loss at init)"),
                Line2D([], [], color="grey", ls="--", lw=1, label="loss at init, ln(vocabulary)")]
    fig.legend(handles=handles, fontsize="small", loc="outside lower center", ncols=3)


def tuning_plot(results: Results, title: str) -> bytes | None:
    """Final loss vs the tuned value (log x) per variant, one panel per size."""
    if not any(t.points for t in results.tuning.values()):
        return None
    archs = list(dict.fromkeys(v.arch for v in results.grid))
    sizes = [s for s in results.sizes if any(v.size == s for v in results.grid)] or [None]
    fig = Figure(figsize=(max(8.0, min(20.0, 5.0 * len(sizes))), 6.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(sizes), sharey=True))
    key = next(iter(results.tuning.values())).key
    for ax, size in zip(axes, sizes):
        _panel(ax, results, size, archs)
        ax.set_xlabel(label(f"{key} (log scale)"))
    axes[0].set_ylabel("final validation loss (nats / token, mean of tuning seeds)")
    fig.suptitle(label(title))
    _legend(fig, results, archs)
    return _png(fig)


def tuning_section(results: Results) -> tuple[list[Block], Plot | None]:
    """The section and its plot; ([], None) when the experiment is not tuned."""
    if not results.tuning:
        return [], None
    key = next(iter(results.tuning.values())).key
    title = f"Final validation loss vs {key} (each variant's optimum starred)"
    try:
        png, why = tuning_plot(results, title), "no grid point has finished yet"
    except Exception as e:  # noqa: BLE001 - one bad figure must not cost the researcher the tables
        logger.warning("could not draw %s: %s", NAME, e, exc_info=True)
        png, why = None, f"drawing failed ({type(e).__name__}: {e}); see the log"
    plot = Plot(NAME, title, png, None if png else why)
    blocks: list[Block] = [Heading(2, section_title(key)),
                           *method_blocks(results), tuning_table(results)]
    blocks += sensitivity_blocks(results) + sizes_blocks(results)
    blocks += [Heading(3, title),
               Image(title, f"plots/{NAME}.png", png) if png else Para([text(f"Skipped: {plot.skipped}.")])]
    return blocks, plot
