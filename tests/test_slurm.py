"""Sweeps submitted to a real Slurm (``--launcher slurm``): a 2-variant x 2-seed sweep as a 2-task array equals
the same sweep run locally; a task pre-empted with USR1 is requeued and its run resumes exactly; a failed run
makes the final job exit 3; ``status`` reports each state. Start a single-node Slurm with
``scripts/slurm/start_local_slurm.sh`` (as root); without an idle Slurm node these tests are skipped."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from e2e import cli, runs, write_experiment
from test_run import PLUGIN
from workbench.status import run_states, status_lines


def slurm_missing() -> str | None:
    """Why no sweep can be submitted here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm here (sinfo/sbatch not found): start one with scripts/slurm/start_local_slurm.sh"
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"sinfo failed ({done.stderr.strip()}): is slurmctld running? scripts/slurm/start_local_slurm.sh"
    if not {"idle", "mix"} & set(done.stdout.split()):
        return f"no idle Slurm node (sinfo: {' '.join(done.stdout.split()) or 'no nodes'})"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.skipif(slurm_missing() is not None, reason=slurm_missing() or "")]

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}


def job(job_id: str) -> list[dict]:
    """``scontrol show job`` fields of the job (every task of an array)."""
    done = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in done.stdout.splitlines() if line.strip()]


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_job(job_id: str, timeout: float = 300) -> dict:
    """The final fields of ``job_id`` once it has ended."""
    fields = wait_until(lambda: [f for f in job(job_id) if f.get("JobState") in TERMINAL], timeout, f"job {job_id}")
    return fields[0]


def submit(exp: Path, out: Path, *flags: str) -> dict:
    proc = cli("run", str(exp), "--out", str(out), "--launcher", "slurm", *flags, cwd=exp.parent)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"python -m workbench status {out}" in stdout
    return json.loads((out / ".slurm/job.json").read_text())


def run_locally(exp: Path, out: Path) -> dict:
    proc = cli("run", str(exp), "--out", str(out), cwd=exp.parent)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode in (0, 3), stderr[-2000:]
    return runs(out)


def losses(found: dict) -> dict:
    return {key: (r["status"], r.get("final_val_loss"), r.get("steps")) for key, r in found.items()}


def test_a_two_task_array_trains_the_sweep_as_a_local_run_does(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, steps=20, every=5)
    out = tmp_path / "slurm"
    ids = submit(exp, out, "--max-parallel", "2")
    assert ids["tasks"] == 2
    # while it trains, status names the host and step of a running run (found, not slept for)
    running = wait_until(lambda: [s for s in _states(out) if s.state == "running"], 240, "a running run in status")
    assert running[0].detail.startswith("host ") and "(Slurm " in running[0].detail
    final = wait_for_job(ids["final"])
    assert (final["JobState"], final["ExitCode"]) == ("COMPLETED", "0:0")
    tasks = job(ids["array"])
    assert len(tasks) == 2 and all(t["JobState"] == "COMPLETED" for t in tasks)
    found = runs(out)
    assert len(found) == 4 and all(r["status"] == "completed" for r in found.values())
    assert losses(found) == losses(run_locally(exp, tmp_path / "local"))  # fp32 CPU, same seeds: the same numbers
    lines = status_lines(out)
    assert lines[0].endswith("4 run(s): 4 completed") and "COMPLETED" in lines[-1]


def test_a_preempted_task_is_requeued_and_its_run_resumes_exactly(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, steps=80, every=10, seeds=[0], variants="  rms: {}", name="preempt")
    out = tmp_path / "slurm"
    ids = submit(exp, out)
    task = f"{ids['array']}_0"
    ckpts = out / "rms/seed0/checkpoints"
    wait_until(lambda: list(ckpts.glob("epoch=*-step=*.ckpt")), 240, "the run's first checkpoint")
    subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)
    final = wait_for_job(ids["final"])
    assert (final["JobState"], final["ExitCode"]) == ("COMPLETED", "0:0")
    fields = job(task)[0]
    assert fields["JobState"] == "COMPLETED" and int(fields["Restarts"]) >= 1  # requeued by the signal, then done
    log = "".join(p.read_text() for p in (out / ".slurm").glob("task-*.log"))
    assert "pre-emption signal: requeueing" in log and "resuming from" in log
    record = runs(out)["rms", 0]
    assert record["status"] == "completed" and record["resumed_from_step"] >= 10
    assert losses({("rms", 0): record}) == losses(run_locally(exp, tmp_path / "local"))  # resumed exactly


def test_a_failed_run_is_in_status_and_the_final_job_exits_3(tmp_path, cache):
    (tmp_path / "wbtest_plugin.py").write_text(PLUGIN)
    exp = write_experiment(tmp_path, cache, steps=12, every=4, seeds=[0], imports=["wbtest_plugin"], name="failing",
                           variants="  rms: {}\n  boom: {model: {ffn: wbtest_explode}}\n  crash: {model: {ffn: wbtest_crash}}")
    out = tmp_path / "slurm"
    ids = submit(exp, out, "--max-parallel", "2")
    final = wait_for_job(ids["final"])
    assert (final["JobState"], final["ExitCode"]) == ("FAILED", "3:0")  # as `run` exits locally
    states = {s.variant: s.state for s in run_states(out)}
    assert states == {"rms": "completed", "boom": "diverged", "crash": "failed"}
    log = next((out / ".slurm").glob("final-*.log")).read_text()
    assert "1 run(s) failed (crash seed0)" in log


def _states(out: Path) -> list:
    try:
        return run_states(out)
    except ValueError:  # no results.json yet: the first task has not registered the experiment
        return []
