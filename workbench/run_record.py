"""One run's record: what training writes (``record.json``, then results.json) and every reader reads.

Training builds a ``RunRecord``; the runner stamps its identity and records it; reports, ``load_run``,
``sample`` and export read it back with ``RunRecord.parse``, which is lenient the way a reader of a file
someone else may have edited must be: a number that is not finite is None, an error message is one
line, a malformed length key is skipped. Only the seed is required.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

log = logging.getLogger("workbench")

COMPLETED, DIVERGED, FAILED, MISSING = "completed", "diverged", "failed", "missing"
FINISHED = (COMPLETED, DIVERGED)  # kept on re-run; "failed" runs are retried


def as_number(value: Any) -> float | None:
    """A finite float, or None for null/NaN/inf/anything non-numeric."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def one_line(text: Any, limit: int = 300) -> str | None:
    """An error message as one line: a traceback's last line (the exception), whitespace collapsed."""
    if text is None or text == "":
        return None
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = " ".join(lines[-1].split()) if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class RunRecord:
    """One (variant, seed) as recorded. ``status``: completed | diverged | failed (a report shows a seed
    the design lists but results.json lacks as ``missing``)."""

    seed: int
    status: str
    error: str | None = None
    identity: str | None = None  # run_folder.identity fingerprint the run was trained under
    resumed_from_step: int | None = None
    branched_from: str | None = None  # a WSD horizon branch: the longer run (run group, same seed) it started from
    branch_step: int | None = None  # ... at this step, its decay start
    trained_steps: int | None = None  # steps this run trained itself: a branch its cool-down, any other run its steps
    tuned_value: float | None = None  # the run group's value of the tuned key (a tuned experiment's grid point)
    tokenizer: str | None = None  # the run folder's tokenizer file, relative to the folder
    final_val_loss: float | None = None  # the whole validation split (capped), completed runs only
    last_val_loss: float | None = None  # a diverged run: its last finite one
    subset_val_loss: float | None = None  # the curve's eval_batches subset at the last evaluation
    final_train_loss: float | None = None
    val_bpb: float | None = None
    tokens_per_sec: float | None = None
    steps: float | None = None
    train_tokens: float | None = None
    train_flops: float | None = None
    wall_time_s: float | None = None
    peak_memory_mb: float | None = None
    precision: str | None = None
    metrics: str | None = None  # metrics.json, relative to the run folder
    batch_fingerprint: str | None = None
    length_eval: dict[int, float | None] = field(default_factory=dict)  # eval length (tokens) -> val loss
    length_eval_notes: dict[int, str] = field(default_factory=dict)  # why a length has no loss

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, entry: Any, source: str = "results.json") -> RunRecord:
        """A record read from a file; ValueError (naming ``source``) only when it has no valid seed."""
        if not isinstance(entry, dict) or not is_seed(entry.get("seed")):
            raise ValueError(f"{source}: a run record without a seed (a non-negative integer): {str(entry)[:80]}")
        values: dict[str, Any] = {"seed": entry["seed"], "status": str(entry.get("status") or FAILED),
                                  "error": one_line(entry.get("error"))}
        for f in fields(cls):
            if f.name in values or f.name.startswith("length_"):
                continue
            raw = entry.get(f.name)
            values[f.name] = as_number(raw) if "float" in str(f.type) else (raw if isinstance(raw, (str, int)) and
                                                                         not isinstance(raw, bool) and raw != "" else None)
        return cls(**values, **_lengths(entry))


def _lengths(entry: dict) -> dict:
    """length_eval {"512": 4.1, "1024": null} -> {512: 4.1, 1024: None}, notes likewise; bad keys skipped."""
    out: dict = {"length_eval": {}, "length_eval_notes": {}}
    for key, value_of in (("length_eval", as_number), ("length_eval_notes", one_line)):
        raw = entry.get(key)
        for k, v in (raw.items() if isinstance(raw, dict) else ()):
            try:
                out[key][int(k)] = value_of(v)
            except (TypeError, ValueError):
                log.warning("skipping malformed %s key %r", key, k)
    for k in out["length_eval"]:
        if out["length_eval"][k] is None and k not in out["length_eval_notes"]:
            out["length_eval_notes"][k] = "no value recorded"
    return out
