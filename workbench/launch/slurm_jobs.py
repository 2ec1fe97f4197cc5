"""What Slurm says about a sweep's jobs (the ids ``launch.slurm`` recorded in ``RUN_DIR/.slurm/job.json``).

``squeue`` knows pending and running jobs; a finished one is asked of ``scontrol show job`` (kept for
MinJobAge) and then ``sacct`` (where accounting is on). Read-only, a few seconds at most; a Slurm that
cannot be asked gives a phrase saying so, never an error: ``status`` must work anywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from .slurm import JOB_DIR, JOB_FILE

TIMEOUT_S = 10


def recorded_jobs(run_dir: Path) -> dict | None:
    """The job ids of the folder's last submission, or None when it was never submitted to Slurm."""
    try:
        record = json.loads((Path(run_dir) / JOB_DIR / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("array") else None


def job_states(job: str, run=subprocess.run) -> list[str]:
    """``"ID STATE (where or why)"`` for every task of ``job`` Slurm still knows; one phrase when it does not."""
    lines = _ask(run, ["squeue", "-h", "-j", job, "-o", "%i %T %R"])
    if lines:
        return [parse_squeue(line) for line in lines]
    shown = _ask(run, ["scontrol", "-o", "show", "job", job])
    if shown:
        return [parse_scontrol(line) for line in shown]
    done = _ask(run, ["sacct", "-n", "-X", "-P", "-j", job, "-o", "JobID,State,ExitCode"])
    if done:
        return [" ".join(line.split("|")) for line in done]
    return [f"{job} not known to Slurm any more (or Slurm cannot be asked from here)"]


def parse_squeue(line: str) -> str:
    """``3_1 RUNNING vm`` -> ``3_1 RUNNING (vm)``; a pending job's reason goes in the brackets too."""
    job, state, where = (line.split(None, 2) + ["", ""])[:3]
    where = where.strip()
    return f"{job} {state}" + (f" {where}" if where.startswith("(") else f" ({where})" if where else "")


def parse_scontrol(line: str) -> str:
    """One ``scontrol -o show job`` line -> ``3_1 COMPLETED exit 0:0, restarts 1``."""
    fields = dict(re.findall(r"(\w+)=(\S*)", line))
    array, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
    job = f"{array}_{task}" if array and task else fields.get("JobId", "?")
    restarts = f", restarts {fields['Restarts']}" if fields.get("Restarts", "0") != "0" else ""
    return f"{job} {fields.get('JobState', '?')} exit {fields.get('ExitCode', '?')}{restarts}"


def _ask(run, argv: list[str]) -> list[str]:
    try:
        done = run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []
