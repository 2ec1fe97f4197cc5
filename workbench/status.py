"""``status RUN_DIR``: every run of a run folder, pending / running (host, step) / completed / failed /
diverged, and the Slurm job states where the folder was submitted with ``--launcher slurm``.

Read while a sweep runs, by anyone: results.json and metrics.json are replaced atomically, a run is
running while its lock is held (probed with a shared, non-blocking flock that is dropped at once), and
the owner file names who holds it. Imports no torch or Lightning: it answers in well under a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .fileio import read_json
from .folder_safety import RunFolderError
from .run_folder import RunFolder, run_label

PENDING, RUNNING = "pending", "running"


@dataclass(frozen=True)
class RunState:
    """One run's state and what there is to say about it (host, step, loss, error)."""

    variant: str
    seed: int
    state: str  # pending | running | completed | failed | diverged
    detail: str = ""


def run_states(run_dir: str | Path) -> list[RunState]:
    """Every run the folder plans or holds, in results.json's order; RunFolderError without a results.json."""
    folder = RunFolder(run_dir)
    results = read_json(folder.results_file)
    if results is None or not isinstance(results.get("variants"), dict):
        raise RunFolderError(f"{folder.results_file}: missing or unreadable: not a run folder yet (a submitted "
                             f"sweep writes it when its first task starts)")
    seeds = [s for s in results.get("seeds", []) if isinstance(s, int)]
    tune = results.get("tune") if isinstance(results.get("tune"), dict) else {}
    tuning_seeds = [s for s in tune.get("tuning_seeds", []) if isinstance(s, int)]
    states = []
    for name, entry in results["variants"].items():
        if not isinstance(entry, dict):
            continue
        recorded = {r["seed"]: r for r in entry.get("runs", []) if isinstance(r, dict) and isinstance(r.get("seed"), int)}
        planned = tuning_seeds if "tuned" in entry and "tuning" not in entry and tuning_seeds else seeds
        for seed in sorted(set(planned) | set(recorded) | set(folder.seeds_on_disk(name))):
            states.append(_state(folder, name, seed, recorded.get(seed), (entry.get("config") or {}).get("train", {})))
    return states


def _state(folder: RunFolder, name: str, seed: int, record: dict | None, train: dict) -> RunState:
    total = f"/{train['steps']}" if isinstance(train, dict) and isinstance(train.get("steps"), int) else ""
    if _held(folder.run_lock(name, seed)):  # a re-run of a recorded run (a retry) shows as running too
        owner = read_json(folder.owner_file(name, seed)) or {}
        where = f"host {owner.get('host', '?')}" + (f" (Slurm {owner['slurm_job']})" if owner.get("slurm_job") else "")
        return RunState(name, seed, RUNNING, f"{where}, step {_step(folder, name, seed)}{total}")
    if record is not None:
        status = str(record.get("status"))
        if status == "failed":
            return RunState(name, seed, status, str(record.get("error", ""))[:160])
        loss = record.get("final_val_loss")
        detail = f"final val loss {loss:.4f}" if isinstance(loss, (int, float)) else "no final loss"
        return RunState(name, seed, status, f"{detail}, {record.get('steps')} steps")
    step = _step(folder, name, seed)
    return RunState(name, seed, PENDING, f"interrupted: resumes from its checkpoint (step {step}{total} trained)"
                    if step else "")


def _held(lock: Path) -> bool:
    """Whether another process holds ``lock`` (a missing lock file: nobody). The probe is a shared lock, so it
    never excludes another reader and is dropped at once; it creates nothing."""
    try:
        import fcntl
    except ImportError:  # no flock here: nothing can be known
        return False
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the probe's lock
    return False


def _step(folder: RunFolder, name: str, seed: int) -> int:
    """The newest step the run wrote to its metrics.json (0 before its first logging step)."""
    curves = read_json(folder.seed_dir(name, seed) / "metrics.json") or {}
    steps = [p.get("step") for p in curves.get("train", []) if isinstance(p, dict) and isinstance(p.get("step"), int)]
    return max(steps, default=0)


def status_lines(run_dir: str | Path, jobs=None) -> list[str]:
    """The table ``status`` prints: a count per state, one line per run, then the Slurm jobs if any."""
    from .launch.slurm_jobs import job_states, recorded_jobs

    record = recorded_jobs(Path(run_dir))
    try:
        states = run_states(run_dir)
    except RunFolderError:
        if record is None:
            raise
        states = []  # submitted, no task has registered the experiment yet
    counts = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    order = (PENDING, RUNNING, "completed", "diverged", "failed")
    summary = ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: order.index(k) if k in order else 9))
    width = max((len(run_label(s.variant, s.seed)) for s in states), default=0)
    lines = [f"{run_dir}: {len(states)} run(s): {summary or 'none registered yet'}"]
    lines += [f"  {run_label(s.variant, s.seed):<{width}}  {s.state:<9}  {s.detail}".rstrip() for s in states]
    if record is not None:
        ask = jobs or job_states
        lines.append(f"Slurm job array {record['array']}: " + "; ".join(ask(str(record["array"]))))
        lines.append(f"Slurm final job {record['final']} (report, exit 3 if a run failed): "
                     + "; ".join(ask(str(record["final"]))))
    return lines
