"""--launcher slurm without a Slurm: the batch scripts, the flags' checks, the final job's exit code, job
states parsed from squeue / scontrol, and the flock probe (the tests marked ``slurm`` submit for real)."""

from __future__ import annotations

import json
import subprocess

import pytest

from e2e import write_experiment
from workbench.cli import main
from workbench.config import ConfigError, load_experiment
from workbench.launch import slurm
from workbench.launch.slurm import SlurmRequest, array_script, final_script, parse_options, task_count
from workbench.launch.slurm_jobs import job_states, parse_scontrol, parse_squeue
from workbench.lock_support import check_flock
from workbench.folder_safety import RunFolderError


def sbatch_lines(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_array_script_asks_for_requeue_the_signal_and_the_resources(tmp_path):
    request = SlurmRequest(partition="gpu", time="2:00:00", cpus_per_run=4, gpus_per_run=2,
                           options={"account": "proj", "exclusive": ""})
    script = array_script(request, "ablate", 6, ["python", "-m", "workbench.launch.slurm_task", "a b.yaml"], tmp_path,
                          tmp_path / ".slurm")
    lines = sbatch_lines(script)
    assert "--array=0-5" in lines and "--requeue" in lines and "--signal=B:USR1@90" in lines
    assert {"--partition=gpu", "--time=2:00:00", "--cpus-per-task=4", "--gpus-per-task=2", "--account=proj",
            "--exclusive", "--open-mode=append"} <= set(lines)
    assert script.splitlines()[-1] == "exec python -m workbench.launch.slurm_task 'a b.yaml'"  # quoted, exec'd
    assert "unset SLURM_NTASKS" in script  # Lightning must not take a task for an srun rank (hpc_ckpt resume)


def test_final_script_asks_for_one_cpu_and_no_gpu(tmp_path):
    lines = sbatch_lines(final_script(SlurmRequest(gpus_per_run=4), "x", ["true"], tmp_path, tmp_path))
    assert "--cpus-per-task=1" in lines and not any("gpus" in line for line in lines)
    assert not any("requeue" in line or "array" in line for line in lines)


@pytest.mark.parametrize("kwargs, flag", [({"time": "soon"}, "--time"), ({"cpus_per_run": 0}, "--cpus-per-run"),
                                          ({"gpus_per_run": -1}, "--gpus-per-run"), ({"max_parallel": 0}, "--max-parallel"),
                                          ({"options": {"array": "0-3"}}, "--slurm-option array"),
                                          ({"options": {"Bad Key": "1"}}, "--slurm-option Bad Key")])
def test_bad_requests_are_one_line_config_errors(kwargs, flag):
    with pytest.raises(ConfigError, match=f"command line: {flag}.*allowed: "):
        SlurmRequest(**kwargs)


def test_slurm_options_parse_and_refuse_a_missing_value():
    assert parse_options(["account=p", "--qos=high", "exclusive="]) == {"account": "p", "qos": "high", "exclusive": ""}
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        parse_options(["account"])


def test_one_task_per_first_round_run_or_max_parallel(tmp_path, cache):
    experiment = load_experiment(write_experiment(tmp_path, cache, seeds={"min": 2, "max": 4}), [], machine=False)
    assert task_count(experiment) == 4  # 2 variants x the 2 first seeds
    assert task_count(experiment, 3) == 3 and task_count(experiment, 10) == 4


def test_submit_writes_both_scripts_and_the_job_ids(tmp_path, cache, monkeypatch, capsys):
    calls = []

    def fake_sbatch(argv):
        calls.append(argv)
        return str(100 + len(calls))

    monkeypatch.setattr(slurm, "_sbatch", fake_sbatch)
    path = write_experiment(tmp_path, cache)
    out = tmp_path / "out"
    assert main(["run", str(path), "train.steps=5", "--out", str(out), "--launcher", "slurm", "--max-parallel", "2"]) == 0
    assert calls[1][2] == "--dependency=afterany:101"
    assert json.loads((out / ".slurm/job.json").read_text())["array"] == "101"
    shown = capsys.readouterr().out
    assert "job array 101 (2 task(s))" in shown and f"python -m workbench status {out.absolute()}" in shown
    assert (out / ".slurm/final.sh").read_text().rstrip().endswith("train.steps=5 --final")


def test_slurm_flags_need_the_slurm_launcher_and_restart_is_refused_with_it(tmp_path, cache, capsys):
    path = write_experiment(tmp_path, cache)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--partition", "gpu"]) == 2
    assert "--partition: only applies to --launcher slurm" in capsys.readouterr().err
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--launcher", "slurm", "--restart", "rms"]) == 2
    assert "--restart: not with --launcher slurm" in capsys.readouterr().err


def test_a_multi_node_run_is_refused_in_one_line_before_anything_is_submitted(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setattr(slurm, "_sbatch", lambda argv: pytest.fail("submitted"))
    out = tmp_path / "o"
    assert main(["run", str(write_experiment(tmp_path, cache)), "train.num_nodes=2", "--out", str(out), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.num_nodes" in err and "srun" in err
    assert not (out / ".slurm").exists()


def test_missing_sbatch_is_one_line(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on it
    assert main(["run", str(write_experiment(tmp_path, cache)), "--out", str(tmp_path / "o"), "--launcher", "slurm"]) == 2
    assert "sbatch: not found" in capsys.readouterr().err


def test_job_state_lines_from_squeue_and_scontrol():
    assert parse_squeue("7_1 RUNNING vm") == "7_1 RUNNING (vm)"
    assert parse_squeue("8 PENDING (Dependency)") == "8 PENDING (Dependency)"
    line = "JobId=9 ArrayJobId=7 ArrayTaskId=1 JobName=x JobState=COMPLETED Reason=None Restarts=1 ExitCode=0:0"
    assert parse_scontrol(line) == "7_1 COMPLETED exit 0:0, restarts 1"


def test_job_states_fall_back_to_scontrol_then_say_unknown():
    def run(argv, **kw):
        out = "JobId=4 JobState=FAILED ExitCode=3:0" if argv[0] == "scontrol" else ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    assert job_states("4", run) == ["4 FAILED exit 3:0"]

    def missing(argv, **kw):
        raise FileNotFoundError(argv[0])

    assert "not known to Slurm" in job_states("4", missing)[0]


def test_flock_probe_accepts_this_disk_and_refuses_a_lock_that_excludes_nothing(tmp_path):
    check_flock(tmp_path / "new" / "run")
    with pytest.raises(RunFolderError, match="does not enforce them.*docs/cluster.md"):
        check_flock(tmp_path, flock=lambda fd, op: None)

    def refused(fd, op):
        raise OSError(38, "Function not implemented")

    with pytest.raises(RunFolderError, match="refuses flock locks"):
        check_flock(tmp_path, flock=refused)
    assert list(tmp_path.iterdir()) == []  # no probe left behind, no folder created
