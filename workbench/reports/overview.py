"""One picture of a run folder's result: the README's opening image (docs/report.png).

Validation loss against step per variant (mean over completed seeds, min-max band), the final loss per
variant with every seed, and the results table with its verdicts, all from the run folder's
results.json and metrics.json files, as the report reads them. Regenerate after the main job:

    python -m workbench.reports.overview runs/ablate_norm docs/report.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..fileio import write_bytes
from .load import COMPLETED, load_curves, load_results
from .plots import _focus_ylim, aggregate, colour, label, linestyle
from .summary import table_order

VERDICT_COLOURS = {"better": "#1a7f37", "worse": "#c62828", "equivalent": "#555555", "undecided": "#9a6700"}


def _val_curves(ax, results, curves) -> None:
    bands = []
    for v in results.variants:
        series = [(c.val.steps, c.val.loss) for r in v.runs if r.status == COMPLETED
                  and (c := curves.get((v.name, r.seed))) is not None and c.val is not None and c.val.steps.size]
        agg = aggregate(series) if series else None
        if agg is None:
            continue
        x, mean, lo, hi = agg
        ax.plot(x, mean, color=colour(v.index), ls=linestyle(v.index), lw=2, marker="o" if x.size <= 30 else None,
                ms=4, label=label(f"{v.name} ({len(series)} seed{'s' if len(series) > 1 else ''})"))
        if len(series) > 1:
            ax.fill_between(x, lo, hi, color=colour(v.index), alpha=0.18, lw=0)
        bands += [(x, hi), (x, lo)]
    if bands:
        _focus_ylim(ax, bands, [])  # as the report's curves: the first steps' high loss does not flatten the rest
        ax.legend(fontsize="small", loc="upper right")
    ax.set_title("Validation loss during training")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss (nats / token)")
    ax.grid(True, alpha=0.35)


def _final_losses(ax, order) -> None:
    for i, v in enumerate(order):
        values = [r.final_val_loss for r in v.runs if r.status == COMPLETED and r.final_val_loss is not None]
        if not values:
            continue
        ax.errorbar(i, np.mean(values), yerr=np.std(values, ddof=1) if len(values) > 1 else 0.0, fmt="s", ms=8,
                    color=colour(v.index), capsize=8, elinewidth=2)
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + offsets, values, s=26, facecolors="white", edgecolors=colour(v.index), linewidths=1.3, zorder=3)
    ax.set_xticks(range(len(order)), [label(v.name) for v in order], rotation=20 if len(order) > 4 else 0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_title("Final validation loss (mean ± std, each seed)")
    ax.grid(True, axis="y", alpha=0.35)


def _table(ax, run_dir: Path) -> None:
    from ..run_summary import result_rows

    title, headers, rows = result_rows(run_dir)
    ax.axis("off")
    ax.set_title(title, fontsize="medium", loc="left")
    table = ax.table(cellText=rows, colLabels=headers, loc="upper left", cellLoc="left", colLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.35)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#cccccc")
        if row == 0:
            cell.set_facecolor("#f3f3f3")
            cell.set_text_props(weight="bold")
        elif col == len(headers) - 1:
            word = rows[row - 1][col].split()[0] if rows[row - 1][col] else ""
            cell.set_text_props(color=VERDICT_COLOURS.get(word, "#1a1a1a"), weight="bold")
    table.auto_set_column_width(list(range(len(headers))))


def overview_png(run_dir: str | Path) -> bytes:
    """The picture as PNG bytes (raises ReportError, one line, for a folder without a readable results.json)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    curves = {(v.name, r.seed): c for v in results.variants for r in v.runs
              if (c := load_curves(run_dir, v, r)) is not None}
    order = table_order(results)
    table_height = 0.6 + 0.28 * len(order)  # inches: a title, the header and one line per variant
    fig = Figure(figsize=(12, 5 + table_height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.6, 1], height_ratios=[5, table_height])
    _val_curves(fig.add_subplot(grid[0, 0]), results, curves)
    _final_losses(fig.add_subplot(grid[0, 1]), order)
    _table(fig.add_subplot(grid[1, :]), run_dir)
    fig.suptitle(f"workbench report: {results.experiment}" + (f" ({results.description})" if results.description else ""),
                 fontsize="large", wrap=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.reports.overview", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder with results.json, e.g. runs/ablate_norm")
    parser.add_argument("out", type=Path, help="the PNG to write, e.g. docs/report.png")
    args = parser.parse_args(argv)
    write_bytes(args.out, overview_png(args.run_dir))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
