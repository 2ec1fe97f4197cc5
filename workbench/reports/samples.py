"""The "Samples" section: each variant's greedy continuation of one fixed prompt, to compare them by eye.

The runner makes them at the end of a sweep (``workbench/report_samples.py``: each variant's first completed seed,
greedy) and stores them in results.json ``samples``; this section only renders what is stored, so it loads no model
and a folder whose checkpoints are gone still shows them. Left out when nothing is stored (a folder from before,
or rebuilt with ``report --rebuild``: a ``run`` of the experiment samples again) or no variant's model loaded. A
stored sample is shown while the seed it came from is a completed run of its variant.
"""

from __future__ import annotations

import re
from typing import Any

from . import fmt
from .doc import Block, Heading, Para, Table, code, text
from .load import COMPLETED, Results, Variant, as_number


def shown(sample: str) -> str:
    """One line for a table cell: newlines as \\n, tabs as \\t, and runs of spaces (indentation) as one
    '·' per space, since Markdown and HTML both collapse whitespace."""
    sample = sample.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return re.sub(r" {2,}", lambda m: "·" * len(m.group()), sample)


def _seed(entry: dict) -> int | None:
    seed = entry.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _row(v: Variant, entry: dict) -> list[str]:
    """Variant, seed, continuation (with its note) or why there is none."""
    sample, note, why = (entry.get(k) if isinstance(entry.get(k), str) else None for k in ("text", "note", "why"))
    if sample is None:
        return [v.name, fmt.DASH, why or "not sampled"]
    return [v.name, str(_seed(entry)), shown(sample) + (f" ({note})" if note else "")]


def _entries(results: Results, stored: Any) -> list[tuple[Variant, dict]]:
    """The stored entries, in results order, of variants whose sampled seed (if any) is still a completed run."""
    stored = stored if isinstance(stored, dict) else {}
    out = []
    for v in results.variants:
        entry = stored.get(v.name)
        completed = {r.seed for r in v.runs if r.status == COMPLETED}
        if isinstance(entry, dict) and completed and (_seed(entry) is None or _seed(entry) in completed):
            out.append((v, entry))
    return out


def samples_section(results: Results, run_dir) -> list[Block]:
    """A table of each variant's stored greedy continuation; [] when none is stored or no variant's model loaded."""
    samples = results.samples or {}
    command = f"python -m workbench sample {run_dir} --prompt TEXT --temperature 0"
    skipped = samples.get("skipped")
    if isinstance(skipped, dict):
        largest, limit = as_number(skipped.get("largest_params")), as_number(skipped.get("max_params"))
        return [Heading(2, "Samples"), Para([text(
            f"Not sampled after the sweep: the largest variant has {fmt.human(largest)} parameters, too slow "
            f"to decode there (the limit is {fmt.human(limit)}). Sample every variant with "), code(command),
            text(".")])]
    entries = _entries(results, samples.get("variants"))
    if not any(_seed(entry) is not None for _, entry in entries):  # no model loaded: nothing to compare
        return []
    prompt = samples.get("prompt") if isinstance(samples.get("prompt"), str) else ""
    tokens = as_number(samples.get("max_new_tokens"))
    return [Heading(2, "Samples"),
            Para([text(f"Greedy continuation ({fmt.DASH if tokens is None else f'{tokens:g}'} new tokens) of the "
                       "prompt "), code(shown(prompt)),
                  text(" by each variant's first completed seed, made at the end of the sweep. Shown on one line: \\n "
                       "is a newline, each · an indenting space. Greedy decoding has no randomness, so the differences "
                       "are the models'. More, longer or sampled: "), code(command), text(".")]),
            Table(["Variant", "Seed", "Continuation"], [_row(v, entry) for v, entry in entries])]
