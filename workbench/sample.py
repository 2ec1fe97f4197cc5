"""``python -m workbench sample``: continue one prompt with several trained variants, to compare them by eye.

Every variant gets the same prompt, the same sampling settings and the same sampling seed, so where two
variants differ it is their weights, not the draw. The models come from ``load_run`` (the run folder
alone: no experiment file, no data cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from components.generation import check_sampling

from .folder_safety import check_variant_name
from .load import LoadError, load_run, run_group
from .results import RunFolderError, read_results
from .run_groups import compared
from .run_record import COMPLETED, RunRecord


class SampleError(ValueError):
    """A prompt or sampling setting that cannot be used; one line."""


@dataclass(frozen=True)
class Sample:
    """One variant's continuation; ``note`` says why it is shorter than asked (learned positions, eos)."""

    variant: str
    seed: int
    prompt: str
    continuation: str
    new_tokens: int
    note: str | None = None


def completed_variants(run_dir: str | Path) -> list[str]:
    """The variants of ``run_dir``'s results.json with at least one completed run, in its order; a name
    that is not a plain variant name (``../other/a``: it would load another folder's model) is LoadError."""
    if not Path(run_dir).is_dir():
        raise LoadError(f"{run_dir}: no such folder")
    path = Path(run_dir) / "results.json"
    try:
        results = read_results(path)
        names = [check_variant_name(name, path) for name, entry in results.get("variants", {}).items()
                 if compared(entry) and any(RunRecord.parse(r, str(path)).status == COMPLETED for r in entry.get("runs", []))]
    except RunFolderError as exc:
        raise LoadError(str(exc)) from None
    if not results:
        raise LoadError(f"{run_dir}: no results.json: not a run folder, or no run has been recorded yet")
    return names


def check_prompt(prompt: str) -> str:
    """``prompt`` if it is text that can be encoded (UTF-8); else SampleError. Bytes that are not UTF-8 in a
    command line reach Python as lone surrogates (surrogateescape), which no tokenizer can encode."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = prompt[exc.start]
        shown = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"character U+{ord(bad):04X}"
        raise SampleError(f"--prompt is not valid UTF-8 text ({shown} at character {exc.start}); give the prompt "
                          f"as UTF-8 (check the terminal's or the script's encoding)") from None
    return prompt


def first_completed_seed(run_dir: str | Path, variant: str) -> int:
    """The seed ``load_run(run_dir, variant)`` loads (call after it succeeded)."""
    results = read_results(Path(run_dir) / "results.json")
    runs = results["variants"][run_group(results, variant)]["runs"]
    return next(r.seed for r in map(RunRecord.parse, runs) if r.status == COMPLETED)


def continue_text(model, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, seed: int = 0) -> tuple[str, int, str | None]:
    """(continuation text, tokens generated, note) of ``prompt``; stops at the tokenizer's eos, and at the
    length learned positions cover (the note says so)."""
    ids = tokenizer.encode(check_prompt(prompt))
    if not ids:
        raise SampleError("the prompt is empty: give at least one character with --prompt")
    note = None
    max_len = model.positions.max_len
    if max_len is not None and len(ids) + max_new_tokens > max_len:
        if len(ids) >= max_len:
            raise SampleError(f"the prompt is {len(ids)} tokens; this model's learned positions cover {max_len} "
                              f"(max_seq_len), with room for at least one new token")
        max_new_tokens = max_len - len(ids)
        note = f"stopped at {max_len} tokens: learned positions cover max_seq_len={max_len}"
    try:
        out = model.generate(torch.tensor([ids]), max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                             seed=seed, eos_id=tokenizer.eos_id)
    except ValueError as exc:  # a sampling setting out of range
        raise SampleError(str(exc)) from None
    new = out[0, len(ids):].tolist()
    if new and new[-1] == tokenizer.eos_id:
        new, note = new[:-1], "ended with the end-of-document token"
    return tokenizer.decode(new), len(new), note


def sample_run(run_dir: str | Path, prompt: str, variants: list[str] | None = None, seed: int | None = None,
               max_new_tokens: int = 100, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, sampling_seed: int = 0) -> list[Sample]:
    """One Sample per variant (default: every variant with a completed run), each trained with ``seed``
    (None: its first completed seed), all with the same sampling settings and ``sampling_seed``.
    Raises LoadError (a variant that cannot be loaded) or SampleError before sampling anything."""
    try:
        check_sampling(temperature, top_k, top_p)
    except ValueError as exc:
        raise SampleError(str(exc)) from None
    check_prompt(prompt)
    if max_new_tokens < 1:
        raise SampleError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    names = variants or completed_variants(run_dir)
    if not names:
        raise LoadError(f"{run_dir}: no variant has a completed run yet")
    loaded = [(name, *load_run(run_dir, name, seed)) for name in names]  # every error before any output
    samples = []
    for name, model, tokenizer in loaded:
        text, n, note = continue_text(model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p, sampling_seed)
        run_seed = seed if seed is not None else first_completed_seed(run_dir, name)
        samples.append(Sample(name, run_seed, prompt, text, n, note))
    return samples


def describe_settings(temperature: float, top_k: int | None, top_p: float | None, sampling_seed: int) -> str:
    if temperature == 0:
        return "greedy"
    parts = [f"temperature {temperature:g}"] + ([f"top-k {top_k}"] if top_k else []) + ([f"top-p {top_p:g}"] if top_p else [])
    return ", ".join(parts) + f", sampling seed {sampling_seed}"


def format_samples(samples: list[Sample], settings: str) -> str:
    """The samples one after another, each under a header naming the variant and its trained seed; the
    prompt is repeated in each so every block reads as one text."""
    lines = [f"prompt: {samples[0].prompt!r}  ({settings})" if samples else ""]
    for s in samples:
        note = f"; {s.note}" if s.note else ""
        lines += ["", f"=== {s.variant} (seed {s.seed}, {s.new_tokens} new tokens{note}) ===", s.prompt + s.continuation]
    return "\n".join(lines)
