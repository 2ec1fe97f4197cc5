"""The report's A/A control (``controls: [aa]``), beside the verdicts: the baseline against its twin under a second
seed stream (other initial weights, the same batches), judged as every variant is. Nothing differs but the draw of
initial weights, so a better or worse here is a false positive of this experiment's procedure, measured on itself."""

from __future__ import annotations

from . import fmt
from .analysis.comparisons import Comparison
from .analysis.verdicts import BETTER, WORSE
from .doc import Block, Bullets, Heading, Para, Span, bold, text
from .load import Results, Variant
from .sections import verdict_text

AA = "aa"
CHECK = "the measured false-positive check of this experiment (a better/worse here is a false positive)"


def _line(results: Results, twin: Variant, c: Comparison | None) -> list[Span]:
    base = results.baseline_for(twin)
    where = f" at {twin.size}" if twin.size is not None else ""
    head = [bold(f"A/A control{where}: "),
            text(f"{base.arch if base else results.baseline} vs itself under a second seed stream ({twin.name}): ")]
    if c is None:
        return head + [text(f"not compared yet (no seed of both has finished) — {CHECK}.")]
    seeds = f"{c.n} paired seed{'s' * (c.n != 1)}"
    spans = head + [bold(verdict_text(c)), text(f", Δ {fmt.delta(c)} over {seeds} — "
                                                f"{CHECK}.")]
    if c.verdict in (BETTER, WORSE):
        spans.append(bold(" Here it is one: read this experiment's other better/worse verdicts with that in mind."))
    return spans


def control_section(results: Results, comparisons: dict[str, Comparison]) -> list[Block]:
    """One line per A/A twin (one per size of a sweep); [] without controls."""
    twins = [v for v in results.controls if v.control == AA]
    if not twins:
        return []
    lines = [_line(results, v, comparisons.get(v.name)) for v in twins]
    return [Heading(3, "A/A control"), Para(lines[0]) if len(lines) == 1 else Bullets(lines)]
