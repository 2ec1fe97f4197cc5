"""The report's content as document blocks: header, results table, how-to-read, variants, runs, plots."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ..config.specs import flat_config as _flatten
from . import fmt
from .analysis.comparisons import Comparison
from .compute import budget_text
from .corpus_line import corpus_text
from .doc import Block, Bullets, Heading, Image, Para, Span, Table, bold, code, text
from .load import COMPLETED, DIVERGED, FAILED, MISSING, Results, Run, Variant
from .plots import Plot
from .summary import VariantSummary, problem_runs, status_text
from .tuning_section import quantity, section_title, value_text
from .analysis.estimable import MIN_DF
from .analysis.learned import MARGIN as LEARNED_MARGIN
from .analysis.verdicts import NOT_LEARNED, UNDECIDED, method_text

_STATUS_LABEL = {
    MISSING: "MISSING (not run yet, or interrupted)",
    DIVERGED: "DIVERGED",
    FAILED: "FAILED",
}


def _run_name(run: Run) -> str:
    return f"{run.variant} seed {run.seed}"


def _budget(config: dict) -> str | None:
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    steps, batch, seq = (train.get(k) for k in ("steps", "batch_size", "seq_len"))
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (steps, batch, seq)):
        return None
    return f"{steps} steps × {batch} sequences × {seq} tokens = {fmt.human(steps * batch * seq)} training tokens per run"


def header(results: Results, no_curves: list[Run]) -> list[Block]:
    """The title and a compact list: baseline, seeds and runs on one line, then budget, data and any run to know
    about; the answer (headline.py) follows it."""
    if results.baseline:
        base_text = results.baseline
    elif results.baseline_named:
        base_text = (f"none — results.json names '{results.baseline_named}', which is not among the variants, so no Δ "
                     "is computed")
    else:
        base_text = "none given, so no Δ is computed"
    policy = results.seed_policy
    added = (f" (added one at a time to the undecided comparisons, {policy.min} to {policy.max} each)"
             if policy.min < policy.max else "")
    total = sum(len(v.runs) for v in results.variants)
    done = sum(r.status == COMPLETED for v in results.variants for r in v.runs)
    problems = problem_runs(results)
    runs = f"{done}/{total} completed" + ("" if problems else " — nothing missing, diverged or failed")
    items: list[list[Span]] = [[bold("Baseline: "), text(base_text + "; "), bold("Seeds: "),
                                text((", ".join(str(s) for s in results.seeds) or "none") + added + "; "),
                                bold("Runs: "), text(f"{runs}; updated {results.updated or 'at an unknown time'}.")]]
    base = results.variant(results.baseline) or (results.variants[0] if results.variants else None)
    budget = budget_text(results.budget) or (_budget(base.config) if base else None)
    if budget:
        items.append([bold("Budget: "), text(budget)])
    corpus = corpus_text(base.data) if base else None
    if corpus:
        items.append([bold("Data: "), text(corpus)])
    for status, failed in problems.items():
        names = "; ".join(_run_name(r) + (f" ({r.error})" if r.error else "") for r in failed)
        items.append([bold(f"{_STATUS_LABEL.get(status, status.upper())}: "), text(names)])
    if no_curves:
        items.append([bold("No metrics.json (no curves): "), text(", ".join(_run_name(r) for r in no_curves))])
    blocks: list[Block] = [Heading(1, f"Ablation report: {results.experiment}")]
    if results.description:
        blocks.append(Para([text(results.description)]))
    return blocks + [Bullets(items, role="header")]


def result_headers(against: str = "baseline") -> list[str]:
    """The results table's columns; against: what the comparisons are against (a ladder's "previous rung")."""
    return ["Variant", "Runs", "Params", "Non-emb. params", "FLOPs/token", "Val loss (mean ± std)", "Val bpb (mean)",
            "Verdict", f"Δ val loss vs {against} [interval]", "Compute multiplier", "Seeds (paired)",
            "Δ std (df, variance)",
            "Peak memory (mean)", "Wall time (mean)"]


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def verdict_text(c: Comparison) -> str:
    """The verdict; an undecided one says why and what would decide it."""
    if c.verdict != UNDECIDED:
        return c.verdict
    if c.n < 2:
        return f"{UNDECIDED} (fewer than 2 paired seeds)"
    if c.df is not None and c.df < MIN_DF:
        dof = f"{c.df} degree{'s' * (c.df != 1)} of freedom"
        return (f"{UNDECIDED} (variance from {dof}: a {_ordinal(c.n + MIN_DF - c.df)} seed, or run groups of "
                f"comparable noise to pool with, would allow a decision; how many seeds it needs is not estimable "
                f"from {dof})")
    if c.seeds_needed is not None:
        return f"{UNDECIDED} (~{c.seeds_needed} seeds to decide)"
    return f"{UNDECIDED} (over 10,000 seeds to decide)"


def _comparison_cells(s: VariantSummary) -> list[str]:
    c = s.comparison
    if c is None:
        return ["baseline" if s.is_baseline else "n/a"] + [fmt.DASH] * 4
    seeds = str(c.n) if c.n == c.seeds else f"{c.n} of {c.seeds}"
    return [verdict_text(c), fmt.delta(c), fmt.multiplier(c.multiplier), seeds, fmt.spread(c)]


def results_table(summaries: list[VariantSummary], against: str = "baseline", results: Results | None = None) -> Table:
    rows = []
    for s in summaries:
        v = s.variant
        rows.append([
            v.name + (" (baseline)" if s.is_baseline else ""),
            status_text(s.counts, len(v.runs)),
            fmt.human(v.params), fmt.human(v.non_embedding_params), fmt.human_flops(v.flops_per_token),
            fmt.mean_std(s.val_loss), fmt.number(s.val_bpb.mean), *_comparison_cells(s),
            fmt.memory(s.peak_memory_mb.mean), fmt.duration(s.wall_time_s.mean),
        ])
    # On the HTML page: the comparison first, then what each variant costs (14 columns do not fit 1280 px).
    groups = [("Loss and verdict", [0, 1, 5, 6, 7, 8, 9, 10, 11]), ("Size and cost", [0, 2, 3, 4, 12, 13])]
    table = Table(result_headers(against), rows, right={2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13}, html_groups=groups)
    return _tuned_column(table, summaries, results) if results is not None and results.tune is not None else table


def _tuned_column(table: Table, summaries: list[VariantSummary], results: Results) -> Table:
    """The table with each variant's tuned value (where its verdict ran) as column 1, its edge flag beside it."""
    def cell(v: Variant) -> str:
        t = results.tuning.get(v.cell)
        edge = f" ({t.edge} edge)" if t is not None and t.edge else ""
        return fmt.DASH if v.tuned is None else value_text(v.tuned["value"]) + edge

    key = str(results.tune.get("key") or "train.lr")
    shift = [0] + list(range(2, len(table.headers) + 1))  # old column i -> shift[i]
    rows = [row[:1] + [cell(s.variant)] + row[1:] for s, row in zip(summaries, table.rows)]
    groups = [(name, [shift[i] for i in cols] if k else [0, 1] + [shift[i] for i in cols[1:]])
              for k, (name, cols) in enumerate(table.html_groups or [])]
    return Table(table.headers[:1] + [f"Tuned {quantity(key)}"] + table.headers[1:], rows,
                 right={shift[i] for i in table.right} | {1}, html_groups=groups or None)


def _tuned_intro(results: Results) -> list[Block]:
    """For a tuned experiment: what the verdicts compare, and which variants are still tuning."""
    if results.tune is None:
        return []
    key = str(results.tune.get("key") or "train.lr")
    what, section = quantity(key), section_title(key)
    spans = [text(f"The verdicts compare each variant at its own tuned {what}: the grid point nearest its fitted "
                  f"optimum (the Tuned {what} column; the grid and how it was chosen under {section} below).")]
    waiting = [f"{cell} ({len(t.points)} of {len(t.points) + len(t.pending)} points run)"
               for cell, t in results.tuning.items() if not t.complete]
    if waiting:
        spans.append(text(" Still tuning, so not compared yet: " + ", ".join(waiting) + "."))
    return [Para(spans)]


def results_section(summaries: list[VariantSummary], has_speed: bool, against: str = "baseline",
                    results: Results | None = None) -> list[Block]:
    """The Results table; with ``results`` of a tuned experiment, each variant's tuned value and what that means."""
    speed = ("compare speed under Speed (paired timing)" if has_speed else
             "this run folder has no paired timing to compare speed with")
    return [
        Heading(2, "Results"),
        *(_tuned_intro(results) if results is not None else []),
        results_table(summaries, against, results),
        Para([text("Final validation loss in nats per token on the whole validation split; bpb = bits per byte of "
                   "raw text. Means over completed seeds only; ± is the sample standard deviation (ddof = 1), — "
                   "where fewer than two seeds completed. Memory and wall time are per run, averaged likewise. "
                   "Throughput is left out on purpose: each run's wall-clock tokens/s (under Per-run results) "
                   f"depends on whatever else the machine was doing at the time; {speed}.")]),
    ]


def how_to_read(run_dir: str, results: Results, comparisons: dict[str, Comparison], has_speed: bool = False) -> list[Block]:
    """Every method the page uses, one item each: the figure, the verdict's test (verdicts.method_text), Δ std,
    not estimable, not learned, the compute multiplier and, where timed, the paired speed ratio."""
    families = Counter(c.size for c in comparisons.values())  # Holm's families: one per size
    if not families:
        return [Heading(2, "How to read this"), Para([text("No baseline to compare with, so there are no verdicts.")])]
    m = max(families.values())
    up_to = f", up to {m} of them" if len(set(families.values())) > 1 else ""
    members = "rungs against each other" if results.ladder else "variants against the baseline of that size"
    sweep = (f" In this scaling sweep each size is a family of its own, its {members}{up_to}: the error rates "
             "hold per size." if len(families) > 1 else "")
    ladder = ("This experiment is a ladder: each rung is compared with the rung before it, which plays the "
              "baseline's part; Holm's family is all the rungs compared. " if results.ladder else "")
    items = [
        [bold("The first figure: "), text(
            "a point per seed: its paired difference (variant minus baseline, same seed and data); the diamond their "
            "mean Δ, the bar the verdict's interval, the grey band ±margin. The unpaired means below it keep the "
            "seed-to-seed noise that pairing cancels.")],
        [bold("Verdicts: "), text(ladder + method_text(results.margin, results.seed_policy, m) + sweep)],
        [bold("Δ std (df, variance): "), text(
            "the std of one paired difference, its degrees of freedom and source: pooled (every size's runs), size "
            "(this size's) or cell (this comparison's seeds).")],
        [bold("Not estimable at n = k: "), text(
            "an interval on fewer than 2 df or wider than 10x the largest |Δ|, or a multiplier's over 100x; only the "
            "point estimate is given (k: paired seeds).")],
        [bold(f"{NOT_LEARNED.capitalize()}: "), text(
            f"a seed ended less than {LEARNED_MARGIN:g} nats below the unigram floor (Data line): no verdict; train "
            "longer (train.steps, or the budget).")],
        [bold("Compute multiplier: "), text(
            "the baseline's training FLOPs to reach the variant's final loss (its validation curve, same seed) over "
            "the variant's; 2.00x: half the compute. Geometric mean over seeds, 95% t-interval on the logs; "
            "extrapolated: read past the baseline's curve on a line in log FLOPs (errs low).")],
    ]
    if has_speed:
        items.append([bold("Step time vs baseline (Speed): "), text(
            "every variant's training step timed in one process, in rounds, in shuffled order on identical batches; "
            "the geometric mean of the per-round ratios to the baseline, with a t-interval on their logs (3 rounds "
            "at least): a load on the machine cancels.")])
    return [Heading(2, "How to read this"), Bullets(items),
            Para([text("To overlay every variant's and seed's curves interactively, run "),
                  code(f"tensorboard --logdir {run_dir}"), text(".")])]


def config_diff(config: dict, base: dict, same: str = "identical to baseline") -> str:
    """The keys where config differs from base, as key=value (JSON), sorted; ``same`` when none do."""
    a, b = _flatten(config), _flatten(base)
    changes = [f"{k}={json.dumps(a.get(k), default=str) if k in a else '(unset)'}"
               for k in sorted(set(a) | set(b)) if a.get(k, ...) != b.get(k, ...)]
    return ", ".join(changes) or same


def variants_section(results: Results, order: list[Variant]) -> list[Block]:
    """Each variant's config against its baseline (the baseline of its size in a scaling sweep)."""
    bases = {v.name: results.baseline_for(v) for v in order}
    if not any(bases.values()) or not any(v.config for v in order):
        return []
    rows = [[v.name, "(baseline)" if v is bases[v.name] else config_diff(v.config, bases[v.name].config)
             if bases[v.name] else "no baseline at this size"] for v in order]
    return [Heading(2, "Variants"), Table(["Variant", "Config differences from the baseline"], rows)]


def _note(run: Run, has_curves: bool) -> str:
    if run.error:
        return run.error
    if run.status == MISSING:
        return "no result yet"
    return "" if has_curves else "no metrics.json"


def runs_section(order: list[Variant], has_curves: set[tuple[str, int]]) -> list[Block]:
    rows = []
    for v in order:
        for r in v.runs:
            rows.append([v.name, str(r.seed), r.status, fmt.number(r.final_val_loss), fmt.number(r.final_train_loss),
                         fmt.number(r.val_bpb), fmt.human(r.tokens_per_sec),
                         fmt.DASH if r.steps is None else f"{r.steps:.0f}", fmt.duration(r.wall_time_s),
                         fmt.memory(r.peak_memory_mb), _note(r, (v.name, r.seed) in has_curves)])
    headers = ["Variant", "Seed", "Status", "Val loss", "Train loss", "Val bpb", "Wall-clock tok/s (not paired)",
               "Steps", "Wall time", "Peak memory", "Error / note"]
    return [Heading(2, "Per-run results"), Table(headers, rows, right={1, 3, 4, 5, 6, 7, 8, 9})]


def plots_section(plots: list[Plot]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Plots"), Para([text(
        "Curves: a line per variant is the mean over its completed seeds, the shaded band their min–max; "
        "dotted lines are runs that did not complete. Colours are fixed per variant across all plots.")])]
    for p in plots:
        blocks.append(Heading(3, p.title))
        if p.png:
            blocks.append(Image(p.title, str(Path("plots") / f"{p.name}.png"), p.png))
            if p.note:
                blocks.append(Para([bold("Note:"), text(f" {p.note}.")]))
        else:
            blocks.append(Para([text(f"Skipped: {p.skipped}.")]))
    return blocks
