"""``status RUN_DIR`` on a run folder written by hand: each state, the running run's host and step read
while its lock is held, the Slurm job lines, and no torch import (it must answer fast on a login node)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.folder_safety import RunFolderError
from workbench.status import run_states, status_lines

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def folder(tmp_path):
    """rms: seed0 completed, seed1 failed; ln: seed0 diverged, seed1 training (lock held, step 6 of 20);
    gelu: seed0 interrupted at step 4 (a checkpoint, no lock), seed1 never started."""
    train = {"config": {"train": {"steps": 20}}}
    write(tmp_path / "results.json", {"experiment": "x", "seeds": [0, 1], "variants": {
        "rms": {**train, "runs": [{"seed": 0, "status": "completed", "final_val_loss": 4.25, "steps": 20},
                                  {"seed": 1, "status": "failed", "error": "RuntimeError: boom"}]},
        "ln": {**train, "runs": [{"seed": 0, "status": "diverged", "final_val_loss": None, "steps": 7}]},
        "gelu": {**train, "runs": []}}})
    write(tmp_path / "ln/seed1/metrics.json", {"train": [{"step": 2}, {"step": 6}], "val": []})
    write(tmp_path / "ln/seed1/.owner.json", {"host": "node07", "pid": 1, "slurm_job": "12_1"})
    write(tmp_path / "gelu/seed0/metrics.json", {"train": [{"step": 4}], "val": []})
    lock = tmp_path / "ln/seed1/.lock"
    lock.touch()
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the trainer's claim (another open file description than the probe's)
    yield tmp_path
    os.close(fd)


def test_each_state_with_its_detail(folder):
    states = {(s.variant, s.seed): (s.state, s.detail) for s in run_states(folder)}
    assert states[("rms", 0)] == ("completed", "final val loss 4.2500, 20 steps")
    assert states[("rms", 1)] == ("failed", "RuntimeError: boom")
    assert states[("ln", 0)][0] == "diverged"
    assert states[("ln", 1)] == ("running", "host node07 (Slurm 12_1), step 6/20")
    assert states[("gelu", 0)] == ("pending", "interrupted: resumes from its checkpoint (step 4/20 trained)")
    assert states[("gelu", 1)] == ("pending", "")


def test_a_released_lock_is_not_running(folder):
    (folder / "ln/seed1/.lock").unlink()  # the holder's descriptor still locks the unlinked file, not this path
    assert {(s.variant, s.seed): s.state for s in run_states(folder)}[("ln", 1)] == "pending"


def test_status_lines_count_states_and_show_the_slurm_jobs(folder):
    write(folder / ".slurm/job.json", {"array": "12", "final": "13", "tasks": 2})
    lines = status_lines(folder, jobs=lambda job: [f"{job} RUNNING (node07)"])
    assert lines[0] == f"{folder}: 6 run(s): 2 pending, 1 running, 1 completed, 1 diverged, 1 failed"
    assert lines[-2] == "Slurm job array 12: 12 RUNNING (node07)"
    assert lines[-1].startswith("Slurm final job 13 ")


def test_submitted_but_not_started_shows_the_jobs_and_exits_0(tmp_path, capsys):
    write(tmp_path / ".slurm/job.json", {"array": "5", "final": "6", "tasks": 2})
    assert status_lines(tmp_path, jobs=lambda job: [f"{job} PENDING"])[0] == f"{tmp_path}: 0 run(s): none registered yet"


def test_no_run_folder_is_exit_2(tmp_path, capsys):
    with pytest.raises(RunFolderError, match="results.json: missing"):
        run_states(tmp_path)
    assert main(["status", str(tmp_path)]) == 2


def test_cli_exit_0_and_no_torch(folder):
    code = ("import sys; from workbench.cli import main; rc = main(['status', sys.argv[1]]); "
            "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'torch imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "  ln seed1    running    host node07" in done.stdout
