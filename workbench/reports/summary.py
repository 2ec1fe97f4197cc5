"""Per-variant aggregates over seeds: what the results table shows, before any formatting."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .analysis.comparisons import Comparison
from .analysis.learned import Learning, learning
from .load import COMPLETED, DIVERGED, FAILED, MISSING, Results, Run, Variant
from .analysis.stats import Summary, summarize


@dataclass
class VariantSummary:
    """Means are over completed seeds only; the comparison (verdict, Δ, multiplier) pairs seeds with the baseline.
    learning: whether the run group has learned (every completed seed clearly below the unigram floor; learned.py)."""

    variant: Variant
    counts: Counter
    val_loss: Summary
    val_bpb: Summary
    tokens_per_sec: Summary
    peak_memory_mb: Summary
    wall_time_s: Summary
    is_baseline: bool
    comparison: Comparison | None  # None for a baseline, or without a baseline at this size
    learning: Learning


def status_text(counts: Counter, total: int) -> str:
    """'2/3 completed, 1 missing': every run accounted for, in a fixed order."""
    parts = [f"{counts.get(COMPLETED, 0)}/{total} completed"]
    others = [s for s in (DIVERGED, FAILED, MISSING) if counts.get(s)]
    others += sorted(s for s in counts if s not in (COMPLETED, DIVERGED, FAILED, MISSING))
    return ", ".join(parts + [f"{counts[s]} {s}" for s in others])


def summarize_variant(variant: Variant, is_baseline: bool, comparison: Comparison | None) -> VariantSummary:
    done = [r for r in variant.runs if r.status == COMPLETED]
    return VariantSummary(
        variant=variant,
        counts=Counter(r.status for r in variant.runs),
        val_loss=summarize(r.final_val_loss for r in done),
        val_bpb=summarize(r.val_bpb for r in done),
        tokens_per_sec=summarize(r.tokens_per_sec for r in done),
        peak_memory_mb=summarize(r.peak_memory_mb for r in done),
        wall_time_s=summarize(r.wall_time_s for r in done),
        is_baseline=is_baseline,
        comparison=comparison,
        learning=learning(variant),
    )


def table_order(results: Results) -> list[Variant]:
    """Baseline first, then the rest in results.json order; in a scaling sweep, the same per size."""
    order: list[Variant] = []
    for size in list(dict.fromkeys(v.size for v in results.variants)):
        group = [v for v in results.variants if v.size == size]
        base = results.baseline_for(group[0])
        order += ([base] if base else []) + [v for v in group if v is not base]
    return order


def summarize_all(results: Results, comparisons: dict[str, Comparison]) -> list[VariantSummary]:
    """Each variant in table order, with its comparison against the baseline of its own size."""
    return [summarize_variant(v, results.baseline_for(v) is v, comparisons.get(v.name)) for v in table_order(results)]


def problem_runs(results: Results) -> dict[str, list[Run]]:
    """Every run that is not completed, by status, in results order: the report names each one."""
    out: dict[str, list[Run]] = {}
    for variant in results.variants:
        for run in variant.runs:
            if run.status != COMPLETED:
                out.setdefault(run.status, []).append(run)
    return out
