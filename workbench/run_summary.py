"""What ``workbench run`` prints when the sweep ends: the result, not only where it is.

A compact table (variant, final validation loss, Δ against its baseline with the interval, verdict)
from results.json, of the run groups this folder has run (one without a single run record, e.g. left out by
``--variant``, is named on a line of its own), then which run groups have not learned (learned.py, with the
unigram floor), with ``tune: {at: smallest}`` which sizes trained at a smaller size's optimum, both report files and
the TensorBoard command. It goes to the log (stderr), so a batch job's log
file ends with the answer.
"""

from __future__ import annotations

from pathlib import Path

from .reports import Comparison, compare, fmt, load_results
from .reports.load import COMPLETED, MISSING, Results, Variant
from .reports.analysis.learned import learned_text, learning
from .reports.analysis.stats import summarize
from .reports.summary import table_order
from .reports.tuning_section import transfer_lines


def _loss(values: list[float]) -> str:
    s = summarize(values)
    if s.mean is None:
        return "n/a"
    return f"{s.mean:.4f}" + (f" ± {s.std:.4f}" if s.std is not None else "")


def _delta(c: Comparison) -> str:
    """'+0.0123 [-0.0050, +0.0296] at 97.5%' (or '+0.4000 (not estimable at n = 2)'), as the report writes it."""
    return fmt.delta(c) if c.mean is not None else "n/a"


def _has_run(variant: Variant) -> bool:
    """Whether this folder holds any run record of the group (one left out by ``--variant`` has none)."""
    return any(r.status != MISSING for r in variant.runs)


def result_rows(run_dir: Path) -> tuple[str, list[str], list[list[str]]]:
    """(what the numbers are, headers, rows), baseline first (per size in a scaling sweep), of the run groups
    with a run record in this folder; a variant without a comparison (no completed run, or no baseline to
    compare with) says why as its verdict."""
    results = load_results(run_dir)
    comparisons = compare(results, run_dir)  # as the report computes them, also before the sweep stored them
    rows = []
    for variant in filter(_has_run, table_order(results)):
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


def notes(results: Results) -> list[str]:
    """The lines under the table: the run groups with no run in this folder, and those that have not learned
    (with the unigram floor and what to change), or the floor they all beat; the floor said unknown where
    results.json lacks it."""
    lines = []
    absent = [v.name for v in table_order(results) if not _has_run(v)]
    if absent:
        lines.append(f"not run in this folder (left out by --variant, or not started): {', '.join(absent)}")
    ran = [v for v in table_order(results) if _has_run(v)]
    states = {v.name: learning(v) for v in ran}
    unlearned = [name for name, state in states.items() if state.not_learned]
    for name in unlearned:
        lines.append(f"{name}: {learned_text(states[name])}")
    if unlearned:
        lines.append("no verdict is drawn against a run group that has not learned: more seeds cannot change that, "
                     "more training steps (train.steps) can")
    floors = sorted({f"{s.floor:.4f}" for s in states.values() if s.floor is not None})
    if ran and not unlearned and floors:
        lines.append(f"every run group has learned: each completed seed ends at least {states[ran[0].name].margin:g} "
                     f"nats below the unigram floor ({', '.join(floors)} nats/token)")
    elif ran and not floors:
        lines.append("whether the models learned is not checked: results.json records no unigram floor")
    return lines + transfer_lines(results)  # tune.at: smallest: which sizes ran no grid of their own


def results_table(run_dir: Path) -> list[str]:
    """The result rows as aligned text lines under a title line, then the notes on them."""
    title, headers, rows = result_rows(run_dir)
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
    return ([f"results of {title}:"] + ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                                        for row in [headers] + rows]
            + ["  " + line for line in notes(load_results(run_dir))])


def end_of_run_lines(run_dir: Path, report_md: Path) -> list[str]:
    """The table, both report files and how to open the curves."""
    return results_table(run_dir) + [f"report: {report_md}", f"        {report_md.with_suffix('.html')}",
                                     f"tensorboard --logdir {run_dir}"]
