"""What ``workbench run`` prints when the sweep ends: the result, not only where it is.

A compact table (variant, final validation loss, Δ against its baseline with the interval, verdict)
from results.json, then both report files and the TensorBoard command. It goes to the log (stderr),
so a batch job's log file ends with the answer.
"""

from __future__ import annotations

from pathlib import Path

from .reports import Comparison, compare, fmt, load_results
from .reports.load import COMPLETED
from .reports.analysis.stats import summarize
from .reports.summary import table_order


def _loss(values: list[float]) -> str:
    s = summarize(values)
    if s.mean is None:
        return "n/a"
    return f"{s.mean:.4f}" + (f" ± {s.std:.4f}" if s.std is not None else "")


def _delta(c: Comparison) -> str:
    """'+0.0123 [-0.0050, +0.0296] at 97.5%' (or '+0.4000 (not estimable at n = 2)'), as the report writes it."""
    return fmt.delta(c) if c.mean is not None else "n/a"


def result_rows(run_dir: Path) -> tuple[str, list[str], list[list[str]]]:
    """(what the numbers are, headers, rows), baseline first (per size in a scaling sweep); a variant
    without a comparison (no completed run, or no baseline to compare with) says why as its verdict."""
    results = load_results(run_dir)
    comparisons = compare(results, run_dir)  # as the report computes them, also before the sweep stored them
    rows = []
    for variant in table_order(results):
        done = [r.final_val_loss for r in variant.runs if r.status == COMPLETED]
        seeds = f"{len(done)}/{len(variant.runs)}" if variant.runs else "0"
        comparison = comparisons.get(variant.name)
        if comparison is None and (results.ladder or results.baseline_for(variant) is variant):  # what others are against
            delta, verdict = "", "first rung" if results.ladder else "baseline"
        elif not done:
            delta, verdict = "", "n/a (no completed run)"
        elif comparison is not None:
            delta = _delta(comparison)
            verdict = comparison.verdict + (f" (vs {comparison.baseline})" if results.ladder else "")
        else:
            delta, verdict = "", "n/a (no baseline run to compare with)"
        rows.append([variant.name, seeds, _loss(done), delta, verdict])
    against = "the previous rung" if results.ladder else "the baseline"
    headers = ["variant", "seeds", "final val loss", f"Δ vs {'previous' if results.ladder else 'baseline'} [interval]",
               "verdict"]
    title = (f"{results.experiment}: final validation loss, mean ± std over completed seeds; "
             f"Δ < 0: lower loss than {against}")
    return title, headers, rows


def results_table(run_dir: Path) -> list[str]:
    """The result rows as aligned text lines under a title line."""
    title, headers, rows = result_rows(run_dir)
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
    return [f"results of {title}:"] + ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                                       for row in [headers] + rows]


def end_of_run_lines(run_dir: Path, report_md: Path) -> list[str]:
    """The table, both report files and how to open the curves."""
    return results_table(run_dir) + [f"report: {report_md}", f"        {report_md.with_suffix('.html')}",
                                     f"tensorboard --logdir {run_dir}"]
