"""The "Samples" section: each variant's greedy continuation of one fixed prompt, to compare them by eye.

Computed while the report is written, from each variant's first completed seed (``load_run``), only where
it is cheap: greedy decoding of SAMPLE_TOKENS tokens of a model of at most MAX_PARAMS parameters takes
well under a second on a CPU. Larger models get a note pointing at ``python -m workbench sample`` instead.
"""

from __future__ import annotations

import logging
import re
import time

from . import fmt
from .doc import Block, Heading, Para, Table, code, text
from .load import COMPLETED, Results

logger = logging.getLogger(__name__)

# Python-looking, since the default corpus is Python source; any text works (byte fallback).
PROMPT = "import os\nimport sys\n\n\ndef main(argv):\n"
SAMPLE_TOKENS = 40
MAX_PARAMS = 25_000_000  # ~0.1 GB of fp32 weights read per token: ~40 tokens per second on one CPU core
MAX_SECONDS = 2.0  # a variant slower than this (a loaded machine) stops the sampling of the rest


def shown(sample: str) -> str:
    """One line for a table cell: newlines as \\n, tabs as \\t, and runs of spaces (indentation) as one
    '·' per space, since Markdown and HTML both collapse whitespace."""
    sample = sample.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return re.sub(r" {2,}", lambda m: "·" * len(m.group()), sample)


def samples_section(results: Results, run_dir) -> list[Block]:
    """A table of each variant's greedy continuation of PROMPT; [] when no variant's model can be loaded."""
    variants = [v for v in results.variants if any(r.status == COMPLETED for r in v.runs)]
    if not variants:
        return []
    largest = max((v.params for v in variants if v.params is not None), default=None)
    command = f"python -m workbench sample {run_dir} --prompt TEXT --temperature 0"
    if largest is not None and largest > MAX_PARAMS:
        return [Heading(2, "Samples"), Para([text(
            f"Not sampled while writing the report: the largest variant has {fmt.human(largest)} parameters, too slow "
            f"to decode here (the limit is {fmt.human(MAX_PARAMS)}). Sample every variant with "), code(command),
            text(".")])]
    import torch  # only where there is something to sample: the report itself needs no torch

    from ..load import LoadError, load_run
    from ..sample import SampleError, continue_text, first_completed_seed

    rows, loaded = [], 0
    for i, v in enumerate(variants):
        try:
            model, tokenizer = load_run(run_dir, v.name)
        except LoadError as exc:
            rows.append([v.name, fmt.DASH, f"not loaded: {exc}"])
            continue
        loaded += 1
        if tokenizer.kind == "none":  # token ids given without a tokenizer (a pre-tokenized .bin corpus)
            rows.append([v.name, fmt.DASH, "not sampled: trained on token ids without a tokenizer to decode them"])
            continue
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                sample, _, note = continue_text(model, tokenizer, PROMPT, SAMPLE_TOKENS, temperature=0)
        except SampleError as exc:  # a prompt longer than learned positions cover
            rows.append([v.name, fmt.DASH, f"not sampled: {exc}"])
            continue
        seconds = time.perf_counter() - start
        rows.append([v.name, str(first_completed_seed(run_dir, v.name)), shown(sample) + (f" ({note})" if note else "")])
        if seconds > MAX_SECONDS and i + 1 < len(variants):
            rows += [[w.name, fmt.DASH, f"not sampled: {v.name} took {seconds:.1f} s"] for w in variants[i + 1:]]
            break
    if not loaded:
        logger.debug("samples section left out: no variant's model loads")
        return []
    return [Heading(2, "Samples"),
            Para([text(f"Greedy continuation ({SAMPLE_TOKENS} new tokens) of the prompt "), code(shown(PROMPT)),
                  text(" by each variant's first completed seed. Shown on one line: \\n is a newline, each · an "
                       "indenting space. Greedy decoding has no randomness, so the differences are the models'. More, "
                       "longer or sampled: "), code(command), text(".")]),
            Table(["Variant", "Seed", "Continuation"], rows)]
