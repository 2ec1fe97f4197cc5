"""results.json: the experiment's index of every finished run, and the report's only input.

The run folder holds the truth: ``experiment.yaml``, each variant's ``variant.json`` and each run's
``record.json``, all written before results.json. So results.json can always be rebuilt from them
(``report --rebuild``). Several processes (``--variant`` jobs on one folder) may finish runs at once:
every update is a locked read-modify-write, every write atomic.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

from .fileio import locked, write_json
from .run_record import FINISHED, is_seed
from .folder_safety import LIMITS, RunFolderError, check_variant_name, read_regular

log = logging.getLogger("workbench")

REBUILD_HINT = "rebuild it from the run folders with: python -m workbench report --rebuild {dir}"


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Every dotted key where two nested mappings differ, as ``key: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [change for key in sorted(set(old) | set(new))
                for change in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [f"{prefix.rstrip('.') or 'config'}: {old!r} -> {new!r}"]


def with_defaults(config: Any, defaults: Any) -> Any:
    """``config`` with every key it lacks taken from ``defaults`` (nested mappings)."""
    if not isinstance(config, dict) or not isinstance(defaults, dict):
        return config
    return {**defaults, **{k: with_defaults(v, defaults.get(k)) for k, v in config.items()}}


# Settings that change how fast data is prepared, never which tokens come out: a run folder's runs stay
# valid when they change, so every config comparison (results.json, checkpoint identity) leaves them out.
HOW_NOT_WHAT = (("data", "workers"), ("data", "memory_mb"))


def comparable(config: Any) -> Any:
    """``config`` without the HOW_NOT_WHAT settings (a copy; anything but a mapping unchanged)."""
    if not isinstance(config, dict):
        return config
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, key in HOW_NOT_WHAT:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


def describe_changes(old: Any, new: Any, limit: int = 4) -> str:
    changes = changed_keys(old, new)
    more = f", and {len(changes) - limit} more" if len(changes) > limit else ""
    return "; ".join(changes[:limit]) + more


def read_results(path: Path) -> dict:
    """results.json, checked for the shape every reader relies on; {} when it does not exist.

    Raises RunFolderError (one line, naming the file and how to rebuild it) when it is unreadable.
    """
    hint = REBUILD_HINT.format(dir=path.parent)
    try:
        data = json.loads(read_regular(path, LIMITS["json"]).decode("utf-8"))
    except FileNotFoundError:
        return {}
    except RunFolderError as e:
        raise RunFolderError(f"{e}; {hint}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path}: cannot read: {e}; {hint}") from None
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{path}: not valid JSON ({e}); {hint}") from None
    problem = _shape_problem(data)
    if problem:
        raise RunFolderError(f"{path}: malformed: {problem}; {hint}")
    return data


def _shape_problem(data: Any) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict):
        return "expected an object with a 'variants' mapping"
    if not isinstance(data.get("seeds", []), list) or not all(map(is_seed, data.get("seeds", []))):
        return "'seeds' must be a list of non-negative integers"
    for name, entry in data.get("variants", {}).items():
        try:
            check_variant_name(name, "results.json")
        except RunFolderError as exc:
            return str(exc).split(": ", 1)[1]
        if not isinstance(entry, dict):
            return f"variants.{name} must be an object"
        if not isinstance(entry.get("runs", []), list):
            return f"variants.{name}.runs must be a list"
        for run in entry.get("runs", []):
            if not isinstance(run, dict) or not is_seed(run.get("seed")):
                return f"variants.{name}.runs has an entry without a seed (a non-negative integer): {str(run)[:60]}"
    return None



def _stale_grid_point(entry: Any) -> bool:
    """A tuning grid point's entry without a finished run (the grid changed, or its runs were discarded)."""
    return isinstance(entry, dict) and "tuned" in entry and not any(
        isinstance(r, dict) and r.get("status") in FINISHED for r in entry.get("runs", []))


class ResultsStore:
    """Locked, atomic access to ``RUN_DIR/results.json``."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "results.json"

    def load(self) -> dict:
        return read_results(self.path)

    def update(self, change: Callable[[dict], None]) -> dict:
        """Apply ``change`` to the current contents under the lock and write the result atomically."""
        with locked(self.run_dir / ".results.lock"):
            data = self.load()
            data.setdefault("variants", {})
            change(data)
            data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            write_json(self.path, _clean(data))
            return data

    def register_experiment(self, header: dict, variants: dict[str, dict]) -> None:
        """Record the experiment and each variant's config/params, keeping the runs already recorded.
        ``variants`` maps name -> {"config": ..., "params": ..., ...} (no runs). Whether they may be
        registered is the run folder's check (``run_folder.RunFolder.register``), made before this."""

        def change(data: dict) -> None:
            stored = data.setdefault("variants", {})
            for name in [n for n, e in stored.items() if n not in variants and _stale_grid_point(e)]:
                del stored[name]  # a point of a grid the experiment no longer runs, without a finished run
            for name, info in variants.items():
                stored[name] = {**info, "runs": (stored.get(name) or {}).get("runs", [])}
            data.update(header)
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

    def forget(self, variant: str) -> None:
        """Drop every run of ``variant`` (``--restart``)."""

        def change(data: dict) -> None:
            if variant in data.get("variants", {}):
                data["variants"][variant]["runs"] = []

        self.update(change)

    def finished(self, variant: str, seed: int) -> dict | None:
        """The run record if (variant, seed) has finished (completed or diverged), else None."""
        for run in self.load().get("variants", {}).get(variant, {}).get("runs", []):
            if run.get("seed") == seed and run.get("status") in FINISHED:
                return run
        return None
