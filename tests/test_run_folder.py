"""A run folder never records a wrong result: damaged, crafted, changed, shared or reused folders,
full disks and interrupts (docs/reliability.md lists each promise and the test that holds it)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from e2e import cli, results, runs, wait_for, write_experiment
from workbench.cli import main
from workbench.results import RunFolderError
from workbench.training.callbacks import eval_schedule
from workbench.training.checkpoint_io import AtomicCheckpointIO, resume_checkpoint

pytestmark = pytest.mark.e2e  # trains sweeps (directly or in a module fixture)






def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def forget_record(out: Path, variant: str, seed: int) -> None:
    """What a kill between the final checkpoint and the recording leaves: checkpoints, no record."""
    (out / variant / f"seed{seed}" / "record.json").unlink()
    data = results(out)
    data["variants"][variant]["runs"] = [r for r in data["variants"][variant]["runs"] if r["seed"] != seed]
    (out / "results.json").write_text(json.dumps(data))


def overwrite_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


# -- choosing a checkpoint to resume from (unit level) -------------------------------------------

IDENTITY = {"fingerprint": "f1", "config": {"train": {"steps": 30, "lr": 0.003}}, "corpus": "c1"}


def save(folder: Path, name: str, step: int, identity=IDENTITY, **extra) -> Path:
    path = folder / name
    AtomicCheckpointIO().save_checkpoint({"global_step": step, "workbench": identity, **extra}, path)
    return path


class Evil:
    """Unpickling this runs code: what a crafted checkpoint in a shared folder would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_picks_the_newest_step_and_falls_back_past_damaged_files(tmp_path):
    save(tmp_path, "last.ckpt", 20)
    newest = save(tmp_path, "epoch=0-step=30.ckpt", 30)
    assert resume_checkpoint(tmp_path, IDENTITY) == (newest, 30)  # a newer step=N beats last.ckpt
    overwrite_middle(newest)  # loads silently with torch.load; the checksum catches it
    assert resume_checkpoint(tmp_path, IDENTITY) == (tmp_path / "last.ckpt", 20)
    (tmp_path / "last.ckpt").write_bytes((tmp_path / "last.ckpt").read_bytes()[:1000])  # truncated
    older = save(tmp_path, "epoch=0-step=10.ckpt", 10)
    assert resume_checkpoint(tmp_path, IDENTITY) == (older, 10)
    (tmp_path / "epoch=0-step=10.ckpt.sha256").unlink()  # no checksum: cannot be trusted
    assert resume_checkpoint(tmp_path, IDENTITY) == (None, 0)


def test_a_checkpoint_holding_a_pickled_callable_is_never_executed(tmp_path, caplog):
    marker = tmp_path / "pwned"
    save(tmp_path, "epoch=0-step=10.ckpt", 10)
    save(tmp_path, "epoch=0-step=20.ckpt", 20, payload=Evil(marker))  # with a valid checksum: the attacker wrote both
    assert resume_checkpoint(tmp_path, IDENTITY) == (tmp_path / "epoch=0-step=10.ckpt", 10)
    assert "refusing checkpoint" in caplog.text and not marker.exists()
    with pytest.raises(Exception):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "epoch=0-step=20.ckpt")  # Lightning's own load path refuses too
    assert not marker.exists()


def test_a_checkpoint_of_another_config_is_refused_naming_the_changed_keys(tmp_path):
    save(tmp_path / "v" / "seed0" / "checkpoints", "last.ckpt", 20)
    changed = {**IDENTITY, "fingerprint": "f2", "config": {"train": {"steps": 50, "lr": 0.003}}}
    with pytest.raises(RunFolderError, match=r"train\.steps: 30 -> 50.*--restart v"):
        resume_checkpoint(tmp_path / "v" / "seed0" / "checkpoints", changed)
    save(tmp_path, "last.ckpt", 20, identity=None)  # written by something that records no config
    assert resume_checkpoint(tmp_path, IDENTITY) == (None, 0)



def test_a_config_key_added_by_a_later_version_counts_as_its_default(tmp_path):
    # A checkpoint written before model.qk_norm existed resumes under a config that has its default;
    # the same key at another value is a changed config.
    save(tmp_path, "last.ckpt", 20)
    later = {**IDENTITY, "fingerprint": "f2", "config": {**IDENTITY["config"], "model": {"qk_norm": "none"}}}
    assert resume_checkpoint(tmp_path, later) == (tmp_path / "last.ckpt", 20)
    changed = {**later, "config": {**IDENTITY["config"], "model": {"qk_norm": "head"}}}
    with pytest.raises(RunFolderError, match=r"model\.qk_norm: 'none' -> 'head'"):
        resume_checkpoint(tmp_path, changed)

# -- end to end --------------------------------------------------------------------------------

def test_kill9_then_damaged_checkpoints_and_metrics_still_end_at_the_uninterrupted_loss(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, steps=200, every=25, seeds=[3], variants="  rms: {}")
    reference = tmp_path / "reference"
    assert main(["run", str(exp), "--out", str(reference)]) == 0

    out = tmp_path / "killed"
    proc = cli("run", str(exp), "--out", str(out))
    folder = out / "rms" / "seed3"
    wait_for(proc, folder, "checkpoints/*step=75.ckpt.sha256")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = sorted(folder.glob("checkpoints/*.ckpt"))
    assert ckpts and not (folder / "record.json").exists(), "the run finished before it could be killed"
    newest = max(resume_checkpoint(folder / "checkpoints")[1], 0)
    for path in ckpts:  # damage every checkpoint of the newest step: the run must restart or fall back
        if torch.load(path, weights_only=True, mmap=True)["global_step"] == newest:
            overwrite_middle(path)
    (folder / "metrics.json").write_text("{garbage")

    proc = cli("run", str(exp), "--out", str(out))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "skipping damaged checkpoint" in err and "metrics.json was damaged" in err
    resumed, uninterrupted = runs(out)["rms", 3], runs(reference)["rms", 3]
    assert resumed["status"] == "completed" and resumed["steps"] == 200
    assert (resumed["resumed_from_step"] or 0) < newest
    assert resumed["final_val_loss"] == pytest.approx(uninterrupted["final_val_loss"], abs=1e-4)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert [p["step"] for p in metrics["val"]] == sorted(eval_schedule(200, 25))


def test_resuming_under_a_changed_config_is_refused_and_restart_retrains(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, steps=8, every=4, seeds=[0], variants="  rms: {}\n  ln: {model: {norm: layernorm}}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    forget_record(out, "rms", 0)  # rms was interrupted at its last checkpoint (step 8), ln finished
    ln = runs(out)["ln", 0]
    registered = {p: p.read_bytes() for p in [out / "experiment.yaml", *out.glob("*/variant.json")]}
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out), "--variant", "rms", "train.lr=0.001"]) == 2
    err = one_line_error(capsys)  # both hold runs: a recorded result or a checkpoint would mix configs
    assert "holds runs" in err and "train.lr: 0.003 -> 0.001" in err and "--restart" in err and "--out" in err
    forget_record(out, "ln", 0)
    assert main(["run", str(exp), "--out", str(out), "--variant", "rms", "train.steps=12"]) == 2
    err = one_line_error(capsys)  # the partial rms run: its checkpoint was trained under the config it started with
    assert "variant 'rms'" in err and "train.steps: 8 -> 12" in err and "--restart rms" in err and "--out" in err
    assert {p: p.read_bytes() for p in registered} == registered  # a refused process registers nothing
    assert not (out / "rms" / "seed0" / "record.json").exists()

    assert main(["run", str(exp), "--out", str(out), "train.steps=12", "--restart", "rms", "--restart", "ln"]) == 0
    done = runs(out)
    assert all(done[v, 0]["steps"] == 12 and done[v, 0]["resumed_from_step"] is None for v in ("rms", "ln"))
    assert done["ln", 0]["final_val_loss"] != ln["final_val_loss"]
    fresh = tmp_path / "fresh"
    assert main(["run", str(exp), "--out", str(fresh), "train.steps=12"]) == 0
    assert done["rms", 0]["final_val_loss"] == pytest.approx(runs(fresh)["rms", 0]["final_val_loss"], abs=1e-6)


def test_killed_before_recording_recovers_the_run_record(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    before = runs(out)["rms", 0]
    forget_record(out, "rms", 0)
    started = time.perf_counter()
    assert main(["run", str(exp), "--out", str(out)]) == 0
    session = time.perf_counter() - started
    after = runs(out)["rms", 0]
    for key in ("final_val_loss", "final_train_loss", "tokens_per_sec", "steps", "train_flops"):
        assert after[key] == pytest.approx(before[key]), key
    # Wall time continues from the final checkpoint's: the checkpoint's time plus at most this session's (a clock
    # restarted at zero would hold only this session's few evaluations, below the checkpoint's).
    saved = torch.load(out / "rms" / "seed0" / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["RunRecorder"]
    assert saved["wall_time_s"] > 0
    assert saved["wall_time_s"] <= after["wall_time_s"] <= saved["wall_time_s"] + session


def test_corrupt_results_json_is_refused_in_one_line_and_rebuilt_from_the_run_folders(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, seeds=[0, 1], variants="  rms: {}\n  ln: {model: {norm: layernorm}}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    before = runs(out)
    ckpt = out / "rms" / "seed0" / "checkpoints" / "last.ckpt"
    mtime = ckpt.stat().st_mtime_ns
    for broken in ("{not json", '{"variants": {"rms": {"runs": [1, 2]}}}', '{"variants": []}'):
        (out / "results.json").write_text(broken)
        capsys.readouterr()
        assert main(["run", str(exp), "--out", str(out)]) == 2
        err = one_line_error(capsys)
        assert str(out / "results.json") in err and "report --rebuild" in err and "(: None" not in err

    assert main(["report", str(out), "--rebuild"]) == 0
    assert runs(out) == before
    assert main(["run", str(exp), "--out", str(out)]) == 0  # everything kept, nothing retrained
    assert ckpt.stat().st_mtime_ns == mtime


def test_another_experiment_in_the_same_folder_is_refused(tmp_path, cache, capsys):
    first = write_experiment(tmp_path, cache, name="first", seeds=[0], variants="  rms: {}")
    second = write_experiment(tmp_path, cache, name="second", seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    assert main(["run", str(first), "--out", str(out)]) == 0
    spec = (out / "experiment.yaml").read_text()
    capsys.readouterr()
    assert main(["run", str(second), "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "'first'" in err and "'second'" in err and "--out" in err
    assert (out / "experiment.yaml").read_text() == spec


def test_unwritable_out_and_full_disk_give_one_line_and_leave_no_temp_file(tmp_path, cache, capsys, monkeypatch):
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["run", str(exp), "--out", str(a_file / "out")]) == 2
    assert "choose another --out" in one_line_error(capsys)

    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    intact = (out / "results.json").read_text()
    # A temp file left by a killed writer (a pid that no longer runs) is cleaned up; a live one is kept.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from workbench.fileio import _HOST

    stale = out / "rms" / "seed0" / "checkpoints" / f".last.ckpt.{_HOST}.{dead.pid}.0123abcd.tmp"
    live = out / f".results.json.{_HOST}.{os.getpid()}.4567cdef.tmp"
    stale.write_bytes(b"partial")
    live.write_bytes(b"in progress")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("workbench.fileio.os.fsync", disk_full)
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out)]) == 1  # registration rewrites experiment.yaml
    err = one_line_error(capsys)
    assert "No space left on device" in err and "re-run" in err and str(out) in err  # names the file
    monkeypatch.undo()
    assert not stale.exists() and live.exists()
    live.unlink()
    assert not [p for p in out.rglob("*.tmp")], "a failed write left its temp file"
    assert (out / "results.json").read_text() == intact


def test_two_processes_without_variant_split_the_runs_instead_of_doubling_them(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, steps=40, seeds=[0], variants="  rms: {}\n  ln: {model: {norm: layernorm}}")
    out = tmp_path / "out"
    assert main(["show", str(exp)]) == 0  # prepare the data cache so both start training at once
    jobs = [cli("run", str(exp), "--out", str(out)) for _ in range(2)]
    errs = []
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-2000:]
        errs.append(err)
    both = "".join(errs)
    for variant in ("rms", "ln"):
        assert both.count(f"{variant} seed0] training") == 1, both[-3000:]
    assert set(runs(out)) == {("rms", 0), ("ln", 0)}
    assert not list(out.rglob("*-v1.ckpt"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "rms" / "seed0"), size_guidance={"scalars": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("loss/train")]
    assert len(steps) == len(set(steps)) == 40 // 2  # logged every 2 steps, once: trained by one process


def test_ctrl_c_finishes_the_step_saves_and_exits_130_then_resumes(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, steps=600, every=25, seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    proc = cli("run", str(exp), "--out", str(out))
    wait_for(proc, out, "rms/seed0/checkpoints/*.ckpt.sha256")  # the proof that steps are in: step 25's checkpoint
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    import re

    step = int(re.search(r"interrupted \(Ctrl-C\) after step (\d+), checkpoint saved: re-run", err).group(1))
    assert 0 < step < 600 and "Traceback" not in err
    assert resume_checkpoint(out / "rms" / "seed0" / "checkpoints")[1] == step
    assert main(["run", str(exp), "--out", str(out)]) == 0
    assert runs(out)["rms", 0]["resumed_from_step"] == step and runs(out)["rms", 0]["steps"] == 600


def test_data_errors_name_the_file_and_binary_files_are_refused(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}", name="vocab",
                           extra="")
    exp.write_text(exp.read_text().replace("vocab_size: 400", "vocab_size: 100000"))
    assert main(["run", str(exp), "--out", str(tmp_path / "o1")]) == 2
    err = one_line_error(capsys)
    assert "vocab.yaml: data.vocab_size:" in err

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("def f(x):\n    return x\n" * 2000)
    (corpus / "b.bin").write_bytes(bytes(range(256)) * 100)
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}")
    assert main(["run", str(exp), "--out", str(tmp_path / "o2"), "data.source=files", f"data.paths=[{corpus}/*]"]) == 2
    err = one_line_error(capsys)
    assert "b.bin" in err and "not a UTF-8 text file" in err and "data.paths" in err


def test_a_key_added_by_a_later_version_does_not_refuse_an_older_folder(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    data = results(out)
    del data["variants"]["rms"]["config"]["model"]["init"]  # written before model.init existed
    (out / "results.json").write_text(json.dumps(data))
    assert main(["run", str(exp), "--out", str(out)]) == 0  # default value: the same config, run kept
    assert main(["run", str(exp), "--out", str(out), "model.init=fan_in"]) == 2  # a real change still refused
