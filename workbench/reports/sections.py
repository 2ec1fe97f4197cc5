"""The report's content as document blocks: header, results table, how-to-read, variants, runs, plots."""

from __future__ import annotations

import json
from pathlib import Path

from . import fmt
from .compute import budget_text
from .doc import Block, Bullets, Heading, Image, Para, Span, Table, bold, code, text
from .load import COMPLETED, DIVERGED, FAILED, MISSING, Results, Run, Variant
from .plots import Plot
from .stats import BASELINE
from .summary import CONF, VariantSummary, problem_runs, status_text

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


def _corpus(data: dict) -> str | None:
    """The corpus in one line, with the unigram loss every model must beat to have learned anything."""
    tokens, unigram = data.get("train_tokens"), data.get("unigram_val_loss")
    if not isinstance(tokens, (int, float)) or not isinstance(unigram, (int, float)):
        return None
    return (f"{fmt.human(tokens)} training / {fmt.human(data.get('val_tokens') or 0)} validation tokens, "
            f"vocabulary {data.get('vocab_size')}; unigram baseline val loss {unigram:.4f} nats/token "
            "(a model below it has learned more than token frequencies)")


def header(results: Results, no_curves: list[Run]) -> list[Block]:
    items: list[list[Span]] = []
    if results.baseline:
        items.append([bold("Baseline: "), text(results.baseline)])
    elif results.baseline_named:
        items.append([bold("Baseline: "), text(f"none — results.json names '{results.baseline_named}', "
                                               "which is not among the variants, so no Δ is computed")])
    else:
        items.append([bold("Baseline: "), text("none given, so no Δ is computed")])
    items.append([bold("Seeds: "), text(", ".join(str(s) for s in results.seeds) or "none")])
    items.append([bold("Results updated: "), text(results.updated or "unknown")])
    base = results.variant(results.baseline) or (results.variants[0] if results.variants else None)
    budget = budget_text(results.budget) or (_budget(base.config) if base else None)
    if budget:
        items.append([bold("Budget: "), text(budget)])
    corpus = _corpus(base.data) if base else None
    if corpus:
        items.append([bold("Data: "), text(corpus)])
    total = sum(len(v.runs) for v in results.variants)
    done = sum(r.status == COMPLETED for v in results.variants for r in v.runs)
    problems = problem_runs(results)
    items.append([bold("Runs: "), text(f"{done}/{total} completed" + ("." if problems else " — nothing missing, "
                                                                        "diverged or failed."))])
    for status, runs in problems.items():
        names = "; ".join(_run_name(r) + (f" ({r.error})" if r.error else "") for r in runs)
        items.append([bold(f"{_STATUS_LABEL.get(status, status.upper())}: "), text(names)])
    if no_curves:
        items.append([bold("No metrics.json (no curves): "), text(", ".join(_run_name(r) for r in no_curves))])
    blocks: list[Block] = [Heading(1, f"Ablation report: {results.experiment}")]
    if results.description:
        blocks.append(Para([text(results.description)]))
    return blocks + [Bullets(items)]


RESULT_HEADERS = ["Variant", "Runs", "Params", "Non-emb. params", "FLOPs/token", "Val loss (mean ± std)",
                  "Val bpb (mean)", f"Δ val loss vs baseline ({CONF:.0%} CI)", "Verdict", "Tokens/s (mean)",
                  "Peak memory (mean)", "Wall time (mean)"]


def results_table(summaries: list[VariantSummary]) -> Table:
    rows = []
    for s in summaries:
        v = s.variant
        rows.append([
            v.name + (" (baseline)" if s.verdict == BASELINE else ""),
            status_text(s.counts, len(v.runs)),
            fmt.human(v.params), fmt.human(v.non_embedding_params), fmt.human_flops(v.flops_per_token),
            fmt.mean_std(s.val_loss), fmt.number(s.val_bpb.mean), fmt.delta(s.delta), s.verdict,
            fmt.human(s.tokens_per_sec.mean), fmt.memory(s.peak_memory_mb.mean), fmt.duration(s.wall_time_s.mean),
        ])
    return Table(RESULT_HEADERS, rows, right={2, 3, 4, 5, 6, 7, 9, 10, 11})


def results_section(summaries: list[VariantSummary]) -> list[Block]:
    return [
        Heading(2, "Results"),
        results_table(summaries),
        Para([text("Final validation loss in nats per token; bpb = bits per byte of raw text. Means over "
                   "completed seeds only; ± is the sample standard deviation (ddof = 1), — where fewer than "
                   "two seeds completed. Throughput, memory and wall time are per run, averaged likewise.")]),
    ]


def how_to_read(run_dir: str) -> list[Block]:
    return [
        Heading(2, "How to read this"),
        Para([text("Δ is the variant's final validation loss minus the baseline's, computed per seed (same "
                   "seed, same data order) and averaged over the seeds both completed; the bracket is a "
                   f"{CONF:.0%} confidence interval for the mean Δ from Student's t with n−1 degrees of freedom. "
                   "Negative Δ means lower loss than the baseline. Verdict: better = the whole interval is "
                   "below 0; worse = the whole interval is above 0; within noise = the interval contains 0 "
                   "(no detectable difference at this number of seeds); n/a = fewer than two paired seeds. "
                   "To overlay every variant's and seed's curves interactively, run "),
              code(f"tensorboard --logdir {run_dir}"), text(".")]),
    ]


def _flatten(d: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _diff(config: dict, base: dict) -> str:
    a, b = _flatten(config), _flatten(base)
    changes = [f"{k}={json.dumps(a.get(k), default=str) if k in a else '(unset)'}"
               for k in sorted(set(a) | set(b)) if a.get(k, ...) != b.get(k, ...)]
    return ", ".join(changes) or "identical to baseline"


def variants_section(results: Results, order: list[Variant]) -> list[Block]:
    """Each variant's config against its baseline (the baseline of its size in a scaling sweep)."""
    bases = {v.name: results.baseline_for(v) for v in order}
    if not any(bases.values()) or not any(v.config for v in order):
        return []
    rows = [[v.name, "(baseline)" if v is bases[v.name] else _diff(v.config, bases[v.name].config) if bases[v.name]
             else "no baseline at this size"] for v in order]
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
    headers = ["Variant", "Seed", "Status", "Val loss", "Train loss", "Val bpb", "Tokens/s", "Steps",
               "Wall time", "Peak memory", "Error / note"]
    return [Heading(2, "Per-run results"), Table(headers, rows, right={1, 3, 4, 5, 6, 7, 8, 9})]


def plots_section(plots: list[Plot]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Plots"), Para([text(
        "Curves: a line per variant is the mean over its completed seeds, the shaded band their min–max; "
        "dotted lines are runs that did not complete. Colours are fixed per variant across all plots.")])]
    for p in plots:
        blocks.append(Heading(3, p.title))
        if p.png:
            blocks.append(Image(p.title, str(Path("plots") / f"{p.name}.png"), p.png))
        else:
            blocks.append(Para([text(f"Skipped: {p.skipped}.")]))
    return blocks
