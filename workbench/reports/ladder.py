"""The report's "Ladder" table (results.json "ladder": true): each rung's change from the rung before, its
comparison with that rung (compare()) and with the first rung (cumulative())."""

from __future__ import annotations

from . import fmt
from .analysis.comparisons import Comparison
from .doc import Block, Heading, Para, Table, text
from .load import Results, Variant
from .sections import config_diff, verdict_text


def _cells(c: Comparison | None) -> list[str]:
    if c is None:
        return [fmt.DASH] * 3
    return [fmt.delta(c), verdict_text(c), fmt.multiplier(c.multiplier)]


def _change(results: Results, v: Variant) -> str:
    if results.archs.index(v.arch) == 0:
        return "(first rung)"
    before = results.previous_rung(v)
    if before is None:
        return "no previous rung at this size"
    return config_diff(v.config, before.config, "identical to the previous rung")


def ladder_section(results: Results, comparisons: dict[str, Comparison],
                   cumulative: dict[str, Comparison]) -> list[Block]:
    """One row per rung (per rung and size in a sweep), in ladder order; [] unless the experiment is a ladder."""
    if not results.ladder:
        return []
    sized = bool(results.sizes)
    rows = []
    for size in dict.fromkeys(v.size for v in results.variants):
        for arch in results.archs:
            v = results.group(arch, size)
            if v is not None:
                rows.append([arch] + ([size] if sized else []) + [_change(results, v)]
                            + _cells(comparisons.get(v.name)) + _cells(cumulative.get(v.name)))
    first = results.archs[0] if results.archs else fmt.DASH
    headers = (["Rung"] + (["Size"] if sized else []) + ["Change from the previous rung",
               "Δ vs previous rung [interval]", "Verdict vs previous", "Multiplier vs previous",
               f"Cumulative Δ vs {first} [interval]", f"Cumulative verdict vs {first}", f"Cumulative multiplier vs {first}"])
    num = 1 + sized
    return [
        Heading(2, "Ladder"),
        Para([text(f"Each rung adds one change to the rung before it, starting from {first}. Δ, verdict and compute "
                   "multiplier compare a rung with the previous rung, so they measure its change alone; the "
                   f"cumulative columns compare it with {first}, so they measure every change up to it. Both are "
                   "paired by seed as in the Results table; the cumulative comparisons are a family of their own, "
                   "Holm-corrected across the rungs, and get seeds only where a rung-to-rung comparison was "
                   "undecided, so they can stay undecided longer.")]),
        Table(headers, rows, right={num + 1, num + 3, num + 4, num + 6}),
    ]
