"""A CoordCheck as a text table, as the ``--json`` object, and as a PNG (one panel per module kind).

The plot follows nanoGPT-mup's coordinate-check figures: x the width (or depth) on a log2 axis, y the
mean |activation| on a log axis, one line per training step (dark: step 1, light: the last step). Flat
lines across x are what a width-transferring parametrization promises; lines climbing with x are the
standard parametrization's logits blowing up.
"""

from __future__ import annotations

import io
import math

from .measure import CoordCheck
from .probe import KINDS
from .verdict import FLAT_RATIO, spread

DPI = 120


def _number(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "diverged"


def _ratio(value: float | None) -> str:
    if value is None:
        return "none (diverged)"
    return "inf (a zero)" if math.isinf(value) else f"{value:.2f}x"


def table_lines(check: CoordCheck) -> list[str]:
    """One row per kind: its value at each size after the last step, max/min, verdict."""
    sizes = check.sweep.sizes
    header = [f"{check.sweep.axis} ->"] + [str(s) for s in sizes] + ["max/min", "verdict"]
    rows = [header]
    for kind, values in check.scales.items():
        rows.append([kind] + [_number(v) for v in values] + [_ratio(spread(values)), check.verdicts[kind]])
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    return ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


def report_lines(check: CoordCheck, title: str) -> list[str]:
    """What the command prints: what was measured, the table, and what "flat" means."""
    base = f" ({check.base})" if check.base else ""
    return [f"coordinate check: {title}, parametrization {check.parametrization}{base}",
            f"mean |activation| on one fixed validation batch after {check.steps} steps, averaged over "
            f"{check.seeds} seed{'s' * (check.seeds != 1)}",
            *table_lines(check),
            f"flat: max/min <= {FLAT_RATIO:g} across the {check.sweep.axis}s; growing / shrinking: larger / smaller "
            f"at the largest {check.sweep.axis}"]


def as_json(check: CoordCheck) -> dict:
    """{"parametrization", "widths" | "depths", "scales": {kind: [value per size]}, "verdicts": {kind: verdict}};
    a non-finite value (a diverged run) is null."""
    return {"parametrization": check.parametrization,
            check.sweep.flag.lstrip("-"): list(check.sweep.sizes),
            "scales": {kind: [v if math.isfinite(v) else None for v in values] for kind, values in check.scales.items()},
            "verdicts": check.verdicts}


def _y_range(curve: list[list[float]]) -> tuple[float | None, float | None]:
    """A log y range spanning at least ``2 * FLAT_RATIO``, centred on the data: a flat kind then reads as
    flat, not as noise magnified to fill the panel; (None, None) without a positive finite value."""
    values = [v for values in curve for v in values if math.isfinite(v) and v > 0]
    if not values:
        return None, None
    low, high = min(values), max(values)
    if high / low >= 2 * FLAT_RATIO:
        return low / 1.25, high * 1.25
    centre, half = math.sqrt(low * high), math.sqrt(2 * FLAT_RATIO)
    return centre / half, centre * half


def plot_png(check: CoordCheck, title: str) -> bytes:
    """The figure: one panel per kind, one line per step over the sizes (log2 x, log y)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    fig = Figure(figsize=(3.2 * len(KINDS), 3.6), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(KINDS))
    colours = matplotlib.colormaps["viridis"]
    sizes = list(check.sweep.sizes)
    for ax, kind in zip(axes, KINDS):
        for step, values in enumerate(check.curves[kind], start=1):
            shade = colours(0.9 * (step - 1) / max(check.steps - 1, 1))
            ax.plot(sizes, values, marker="o", markersize=3, color=shade, label=f"step {step}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        low, high = _y_range(check.curves[kind])
        if low is not None:
            ax.set_ylim(low, high)
        ax.set_title(f"{kind}: {check.verdicts[kind]}")
        ax.set_xlabel(check.sweep.axis)
        ax.grid(True, alpha=0.35)
    axes[0].set_ylabel("mean |activation|")
    axes[-1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the panels, not on a line
    base = f" ({check.base})" if check.base else ""
    fig.suptitle(f"coordinate check of {title}: parametrization {check.parametrization}{base}, mean |activation| "
                 f"after each of {check.steps} steps")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
