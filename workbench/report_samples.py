"""The report's "Samples", made by the runner: each variant's greedy continuation of one fixed prompt.

At the end of a sweep (``post_sweep.record_samples``) each variant with a completed run has its first completed
seed loaded (``load_run``) and continues PROMPT greedily for SAMPLE_TOKENS new tokens. The texts are stored in
results.json ``samples``; the report renders them (``reports/samples.py``) and loads no model, so a folder whose
checkpoints are gone still shows them. Only where it is cheap: greedy decoding of SAMPLE_TOKENS tokens of a model of
at most MAX_PARAMS parameters takes well under a second on a CPU; a larger sweep stores that it was not sampled, and
the report points at ``python -m workbench sample``.

A variant is sampled again only when its completed runs changed (a new seed completed, or a run was trained
again): each entry keeps a digest of the records it was made from. A failure is logged, never raised.

results.json ``samples``::

    {"prompt": PROMPT, "max_new_tokens": SAMPLE_TOKENS,
     "variants": {name: {"seed": 0, "text": "...", "note": null, "runs": "<digest>"},      # sampled
                  name: {"seed": 0 | null, "text": null, "why": "not loaded: ...", "runs": "<digest>"}},
     "skipped": {"largest_params": N, "max_params": MAX_PARAMS}}                            # only when too large

(``seed`` is null when the model did not load; ``note`` says why a continuation is shorter than asked.)
``report --rebuild`` keeps the entries whose seed is still a completed run; a ``run`` of the experiment (which keeps
every finished run) samples the rest again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from .load import LoadError, load_run
from .results import ResultsStore
from .run_groups import compared
from .sample import SampleError, continue_text, first_completed_seed

log = logging.getLogger("workbench")

# Python-looking, since the default corpus is Python source; any text works (byte fallback).
PROMPT = "import os\nimport sys\n\n\ndef main(argv):\n"
SAMPLE_TOKENS = 40
MAX_PARAMS = 25_000_000  # ~0.1 GB of fp32 weights read per token: ~40 tokens per second on one CPU core
MAX_SECONDS = 2.0  # a variant slower than this (a loaded machine) stops the sampling of the rest


def runs_digest(entry: dict) -> str | None:
    """A digest of a variant's completed run records (results.json ``variants.<name>``): it changes when a run
    completes or is trained again (``--restart``: the same seed, other numbers); None without a completed run."""
    runs = [r for r in entry.get("runs") or [] if isinstance(r, dict) and r.get("status") == "completed"]
    if not runs:
        return None
    return hashlib.sha256(json.dumps(runs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record_samples(store: ResultsStore) -> None:
    """Sample every variant whose completed runs changed since it was sampled, into results.json ``samples``
    (written only when it changes). Never raises: the sweep's results stand without samples (a warning)."""
    try:
        data = store.load()
        samples = new_samples(store.run_dir, data)
        if samples != data.get("samples"):
            store.update(lambda results: results.update(samples=samples))
    except Exception as exc:  # a plugin that fails outside training, a full disk, ...: logged, never the sweep's end
        log.warning("report samples not stored: %s: %s", type(exc).__name__, exc)


def new_samples(run_dir: Path, data: dict) -> dict | None:
    """results.json ``samples`` for ``data`` (results.json as it is): the stored entries whose runs are unchanged,
    the others sampled now; None when no variant has a completed run."""
    entries = {n: e for n, e in (data.get("variants") or {}).items() if compared(e)}  # a tuned variant at its optimum
    digests = {n: d for n, e in entries.items() if (d := runs_digest(e)) is not None}
    if not digests:
        return None
    head = {"prompt": PROMPT, "max_new_tokens": SAMPLE_TOKENS}
    params = [p for n in digests if isinstance(p := entries[n].get("params"), (int, float)) and not isinstance(p, bool)]
    if params and max(params) > MAX_PARAMS:
        return {**head, "variants": {}, "skipped": {"largest_params": max(params), "max_params": MAX_PARAMS}}
    old = data.get("samples") if isinstance(data.get("samples"), dict) else {}
    same = all(old.get(k) == v for k, v in head.items()) and isinstance(old.get("variants"), dict)
    kept = {n: e for n, e in (old["variants"].items() if same else ()) if isinstance(e, dict)
            and n in digests and e.get("runs") == digests[n]}
    made = sample_variants(run_dir, [n for n in digests if n not in kept], digests)
    return {**head, "variants": {n: kept.get(n) or made[n] for n in digests}}


def sample_variants(run_dir: Path, names: list[str], digests: dict[str, str]) -> dict[str, dict]:
    """Each of ``names``' entry, in order; a variant slower than MAX_SECONDS leaves the rest unsampled (their
    entries carry no digest, so the next sweep tries them again)."""
    out: dict[str, dict] = {}
    for i, name in enumerate(names):
        entry, seconds = sample_one(run_dir, name)
        out[name] = {**entry, "runs": digests[name]}
        if seconds > MAX_SECONDS and i + 1 < len(names):
            out.update({rest: {"seed": None, "text": None, "why": f"not sampled: {name} took {seconds:.1f} s",
                               "runs": None} for rest in names[i + 1:]})
            break
    return out


def sample_one(run_dir: Path, name: str) -> tuple[dict, float]:
    """(entry, seconds the decoding took) for one variant: its first completed seed's greedy continuation of
    PROMPT, or why there is none (``seed`` null: the model did not load)."""
    try:
        model, tokenizer = load_run(run_dir, name)
    except Exception as exc:  # LoadError says what is wrong in one line; anything else names its type
        return {"seed": None, "text": None, "why": f"not loaded: {_message(exc)}"}, 0.0
    seed = first_completed_seed(run_dir, name)
    if tokenizer.kind == "none":  # token ids given without a tokenizer (a pre-tokenized .bin corpus)
        return {"seed": seed, "text": None, "why": "not sampled: trained on token ids without a tokenizer to decode them"}, 0.0
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            text, _, note = continue_text(model, tokenizer, PROMPT, SAMPLE_TOKENS, temperature=0)
    except Exception as exc:  # SampleError: a prompt longer than learned positions cover
        return {"seed": seed, "text": None, "why": f"not sampled: {_message(exc)}"}, 0.0
    return {"seed": seed, "text": text, "note": note}, time.perf_counter() - start


def _message(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (LoadError, SampleError)) else f"{type(exc).__name__}: {exc}"
