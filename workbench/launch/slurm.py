"""``run EXP.yaml --launcher slurm``: one Slurm job array over one shared run folder, then a final job.

Every array task runs the ordinary runner on the same run folder (``slurm_task``): it claims runs under the
folder's locks, trains the ones nobody holds, and goes through the sequential seed rounds and tuning
stages as a local run does (each round is decided from results.json, which every task reads). A task
waits only at the end of a round, for a run another task is still training, never for the whole sweep.
A small job that depends on the array (``afterany``) then writes the report and exits 3 where a run
failed, as ``run`` does locally. Plain ``sbatch`` with generated batch scripts, not submitit: no new
dependency, and the scripts are files in the run folder anyone can read, resubmit and requeue.

Pre-emption: every task asks for ``--signal=B:USR1@<seconds>`` and ``--requeue``; on USR1 the task asks
Slurm to requeue it, Slurm stops it with SIGTERM, the run saves ``last.ckpt`` (the SIGTERM path of
``training.run``) and the requeued task resumes it exactly, as a re-run does.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError

JOB_DIR = ".slurm"  # inside the run folder: the batch scripts, the job ids, the task logs
JOB_FILE = "job.json"
TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+(:\d{1,2})?$")  # sbatch --time forms: M, M:S, H:M:S, D-H[:M[:S]]
OPTION = re.compile(r"^[a-z][a-z0-9-]*$")
SIGNAL_LEAD_S = 90  # USR1 this long before the time limit: time to finish the step and save


class SlurmError(RuntimeError):
    """sbatch is missing or refused a job: one line with what it said."""


@dataclass(frozen=True)
class SlurmRequest:
    """What one array task asks for, from the ``run`` flags (checked: bad values are ConfigErrors)."""

    partition: str | None = None
    time: str | None = None  # sbatch --time
    cpus_per_run: int = 1
    gpus_per_run: int = 0
    max_parallel: int | None = None  # at most this many array tasks (each trains runs one after another)
    options: dict[str, str] = field(default_factory=dict)  # more #SBATCH --key=value lines

    def __post_init__(self):
        if self.time is not None and not TIME.match(self.time):
            raise ConfigError("command line", "--time", f"{self.time!r} is not a Slurm time", "MINUTES, H:M:S, D-H:M:S")
        for flag, value, low in (("--cpus-per-run", self.cpus_per_run, 1), ("--gpus-per-run", self.gpus_per_run, 0),
                                 ("--max-parallel", self.max_parallel, 1)):
            if value is not None and value < low:
                raise ConfigError("command line", flag, f"{value} is out of range", f"an integer >= {low}")
        for key in self.options:
            if not OPTION.match(key) or key in OWNED:
                raise ConfigError("command line", f"--slurm-option {key}", "not an sbatch option the launcher lets you set",
                                  f"a lowercase sbatch long option other than {', '.join(sorted(OWNED))}, as KEY=VALUE")


# set by the launcher itself: an --slurm-option may not override them
OWNED = frozenset({"array", "output", "error", "open-mode", "requeue", "signal", "dependency", "parsable", "chdir", "job-name"})


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """``--slurm-option KEY=VALUE`` flags as a mapping; ConfigError naming a malformed one."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("command line", f"--slurm-option {pair}", "not KEY=VALUE", "KEY=VALUE, e.g. account=myproject")
        options[key.strip().removeprefix("--")] = value
    return options


def array_script(request: SlurmRequest, name: str, tasks: int, command: list[str], cwd: Path, logs: Path) -> str:
    """The array's batch script: ``tasks`` tasks, each ``command`` exec'd as the batch shell itself, so the
    pre-emption signal (``B:USR1``) reaches the runner."""
    lines = [f"--job-name={name}", f"--array=0-{tasks - 1}", f"--output={logs}/task-%A_%a.log",
             f"--cpus-per-task={request.cpus_per_run}", "--ntasks=1", "--requeue", "--open-mode=append",  # a requeued task's log goes on
             f"--signal=B:USR1@{SIGNAL_LEAD_S}"]
    return _script(request, lines, request.gpus_per_run, command, cwd)


def final_script(request: SlurmRequest, name: str, command: list[str], cwd: Path, logs: Path) -> str:
    """The final job's batch script: one CPU, after every array task ended (``--dependency`` at sbatch)."""
    lines = [f"--job-name={name}-report", f"--output={logs}/final-%j.log", "--cpus-per-task=1", "--ntasks=1"]
    return _script(request, lines, 0, command, cwd)


def _script(request: SlurmRequest, lines: list[str], gpus: int, command: list[str], cwd: Path) -> str:
    lines = lines + ([f"--partition={request.partition}"] if request.partition else []) \
        + ([f"--time={request.time}"] if request.time else []) + ([f"--gpus-per-task={gpus}"] if gpus else []) \
        + [f"--{k}={v}" if v != "" else f"--{k}" for k, v in request.options.items()]
    header = "\n".join(f"#SBATCH {line}" for line in lines)
    # SLURM_NTASKS unset: a task is one runner process; Lightning must not take it for an srun-launched
    # rank (it would also resume from an hpc_ckpt in the working folder, another run's)
    return (f"#!/bin/bash\n{header}\n# written by `python -m workbench run --launcher slurm`\n"
            f"unset SLURM_NTASKS SLURM_NPROCS\ncd {shlex.quote(str(cwd))}\nexec {shlex.join(command)}\n")


def task_count(experiment, max_parallel: int | None = None) -> int:
    """How many array tasks: the runs of the sweep's first round (every run group at its first seeds; a tuned
    experiment's grid at the tuning seeds), so each can start at once, or ``max_parallel`` if fewer: each task
    claims runs until its round has none left, so fewer tasks train the same runs one after another."""
    if experiment.tune:
        runs = sum(1 for v in experiment.variants.values() if v.point.tuning) * len(experiment.tuning_seeds())
    else:
        runs = len(experiment.variants) * experiment.seed_policy["min"]
    return max(1, min(runs, max_parallel or runs))


def submit(experiment, out: Path, overrides: list[str], variants: list[str] | None, request: SlurmRequest,
           sbatch: str = "sbatch") -> dict:
    """Write the two batch scripts into ``out/.slurm``, submit the array and its final job, record their
    ids in ``out/.slurm/job.json`` (``status`` reads it) and return that record."""
    out = out.absolute()
    jobs = out / JOB_DIR
    jobs.mkdir(parents=True, exist_ok=True)
    cwd = Path.cwd()
    base = [sys.executable, "-m", "workbench.launch.slurm_task", str(experiment.path.absolute()), "--out", str(out),
            *[f"--variant={v}" for v in variants or []], *overrides]
    tasks = task_count(experiment, request.max_parallel)
    array = jobs / "array.sh"
    array.write_text(array_script(request, experiment.name, tasks, base, cwd, jobs))
    array_id = _sbatch([sbatch, "--parsable", str(array)])
    final = jobs / "final.sh"
    final.write_text(final_script(request, experiment.name, [*base, "--final"], cwd, jobs))
    final_id = _sbatch([sbatch, "--parsable", f"--dependency=afterany:{array_id}", str(final)])
    record = {"array": array_id, "final": final_id, "tasks": tasks, "submitted": time.time()}
    (jobs / JOB_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def _sbatch(argv: list[str]) -> str:
    """The job id sbatch --parsable prints; SlurmError with its message when it fails or is missing."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]}: not found: --launcher slurm needs Slurm's sbatch on this machine (a login node)") from None
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {' '.join(done.stderr.split()) or done.returncode}")
    return done.stdout.strip().split(";")[0]


def submitted_lines(record: dict, out: Path) -> list[str]:
    """What the submission prints: job ids, the run folder and the command that shows progress."""
    return [f"submitted job array {record['array']} ({record['tasks']} task(s)) and its final job {record['final']} "
            f"(report, exit 3 if a run failed)",
            f"run folder: {out}",
            f"progress:   python -m workbench status {shlex.quote(str(out))}",
            f"logs:       {out / JOB_DIR}/task-{record['array']}_*.log"]
