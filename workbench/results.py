"""results.json: the experiment's record of every finished run, and the report's only input.

Several processes (``--variant`` jobs on one run folder) may finish runs at the same time, so every
update is a locked read-modify-write, and every write is atomic: a crash or a kill never leaves a
half-written file, and no finished run is lost.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .atomic import write_json

FINISHED = ("completed", "diverged")  # kept on re-run; "failed" runs are retried


class ResultsConflict(ValueError):
    """The run folder holds results of a differently configured experiment."""


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _diff(old: Any, new: Any, prefix: str = "") -> str | None:
    """First dotted key where two nested mappings differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _diff(old.get(key), new.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if old == new else f"{prefix.rstrip('.')}: {old!r} -> {new!r}"


class ResultsStore:
    """Locked, atomic access to ``RUN_DIR/results.json``."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "results.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / ".results.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> dict:
        if not self.path.exists():
            return {}
        with open(self.path) as f:
            return json.load(f)

    def update(self, change: Callable[[dict], None]) -> dict:
        """Apply ``change`` to the current contents under the lock and write the result atomically."""
        with self._locked():
            data = self.load()
            change(data)
            data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            write_json(self.path, _clean(data))
            return data

    def register_experiment(self, header: dict, variants: dict[str, dict]) -> None:
        """Record the experiment and each variant's config/params; refuse to mix configurations.

        ``variants`` maps name -> {"config": ..., "params": ..., ...} (no runs). A variant already in
        the file with a different config raises ResultsConflict naming the first differing key.
        """

        def change(data: dict) -> None:
            stored = data.setdefault("variants", {})
            for name, info in variants.items():
                old = stored.get(name)
                if old is not None and old.get("runs") and old.get("config") != _clean(info["config"]):
                    where = _diff(old.get("config"), _clean(info["config"]))
                    raise ResultsConflict(
                        f"{self.path}: variant '{name}' already has runs trained with a different config "
                        f"({where}); use --out for a new run folder"
                    )
                runs = old.get("runs", []) if old else []
                stored[name] = {**info, "runs": runs}
            for key, value in header.items():
                data[key] = value
            # Keep the experiment's variant order first, then any others already recorded.
            data["variants"] = {**{n: stored[n] for n in variants}, **{n: v for n, v in stored.items() if n not in variants}}

        self.update(change)

    def record_run(self, variant: str, run: dict) -> None:
        """Insert or replace the run of ``run["seed"]`` under ``variant``, sorted by seed."""

        def change(data: dict) -> None:
            entry = data.setdefault("variants", {}).setdefault(variant, {"runs": []})
            runs = [r for r in entry.get("runs", []) if r.get("seed") != run["seed"]]
            entry["runs"] = sorted(runs + [run], key=lambda r: r["seed"])

        self.update(change)

    def finished(self, variant: str, seed: int) -> dict | None:
        """The run record if (variant, seed) has finished (completed or diverged), else None."""
        for run in self.load().get("variants", {}).get(variant, {}).get("runs", []):
            if run.get("seed") == seed and run.get("status") in FINISHED:
                return run
        return None
