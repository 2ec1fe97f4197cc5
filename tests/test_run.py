"""End-to-end runs on tiny budgets: completion, resume after kill -9, re-run keeps finished runs,
concurrent --variant jobs, divergence and failure statuses."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import torch

from e2e import cli, results, runs, wait_for, write_experiment
from workbench.cli import main

pytestmark = pytest.mark.e2e  # trains sweeps (directly or in a module fixture)



def test_run_trains_every_variant_and_seed_on_identical_batches(tmp_path, cache):
    exp = write_experiment(tmp_path, cache)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    done = runs(out)
    assert set(done) == {("rms", 0), ("rms", 1), ("ln", 0), ("ln", 1)}
    assert all(r["status"] == "completed" and r["steps"] == 12 for r in done.values())
    # Same seed -> the same batch stream for every variant; another seed -> another stream.
    assert done["rms", 0]["batch_fingerprint"] == done["ln", 0]["batch_fingerprint"]
    assert done["rms", 0]["batch_fingerprint"] != done["rms", 1]["batch_fingerprint"]
    info = results(out)["variants"]["rms"]
    assert info["params"] > info["non_embedding_params"] > 0 and info["flops_per_token"] > 0
    assert (out / "experiment.yaml").exists() and (out / "report.md").exists() and (out / "report.html").exists()
    metrics = json.loads((out / done["ln", 1]["metrics"]).read_text())
    # Every eval_every steps, plus end-dense points (eval_schedule) for the compute multiplier.
    assert [p["step"] for p in metrics["val"]] == [4, 6, 8, 9, 10, 12]
    # The curve's last point is the eval_batches subset; the final loss reads the whole val split.
    assert metrics["val"][-1]["loss"] == pytest.approx(done["ln", 1]["subset_val_loss"])
    assert done["ln", 1]["final_val_loss"] != done["ln", 1]["subset_val_loss"]
    # TensorBoard: one folder per variant/seed, so runs overlay.
    assert list((out / "ln" / "seed1").glob("events.out.tfevents.*"))


def test_rerun_keeps_finished_runs(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    before = runs(out)
    ckpt = out / "rms" / "seed0" / "checkpoints" / "last.ckpt"
    mtime = ckpt.stat().st_mtime_ns
    assert main(["run", str(exp), "--out", str(out)]) == 0
    assert runs(out) == before
    assert ckpt.stat().st_mtime_ns == mtime


def test_kill_then_rerun_resumes_to_the_same_final_loss(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, steps=300, every=25, seeds=[3], variants="  rms: {}")
    reference = tmp_path / "reference"
    assert main(["run", str(exp), "--out", str(reference)]) == 0

    out = tmp_path / "killed"
    proc = cli("run", str(exp), "--out", str(out))
    ckpts = out / "rms" / "seed3" / "checkpoints"
    # The checksum is written after the checkpoint: a kill between the two leaves step 50 unverified (and
    # rightly skipped on resume), so wait for the checksum, as test_run_folder does.
    wait_for(proc, ckpts, "*step=50.ckpt.sha256")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists() or not runs(out), "the run finished before it could be killed"

    assert main(["run", str(exp), "--out", str(out)]) == 0
    resumed, uninterrupted = runs(out)["rms", 3], runs(reference)["rms", 3]
    assert resumed["resumed_from_step"] >= 50
    assert resumed["status"] == "completed" and resumed["steps"] == 300
    assert resumed["final_val_loss"] == pytest.approx(uninterrupted["final_val_loss"], abs=1e-4)


def test_sigterm_saves_the_finished_steps_exits_143_and_the_rerun_resumes(tmp_path, cache):
    from workbench.training.checkpoint_io import resume_checkpoint

    exp = write_experiment(tmp_path, cache, steps=600, every=25, seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    proc = cli("run", str(exp), "--out", str(out))
    wait_for(proc, out, "rms/seed0/checkpoints/*.ckpt.sha256")  # the proof that steps are in: step 25's checkpoint
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    step = int(re.search(r"terminated \(SIGTERM\) after step (\d+), checkpoint saved: re-run", err).group(1))
    assert 0 < step < 600
    assert resume_checkpoint(out / "rms" / "seed0" / "checkpoints") == (out / "rms" / "seed0" / "checkpoints" / "last.ckpt", step)
    assert not (out / "results.json").exists() or not runs(out)  # not recorded as finished

    assert main(["run", str(exp), "--out", str(out)]) == 0
    run = runs(out)["rms", 0]
    assert run["status"] == "completed" and run["steps"] == 600 and run["resumed_from_step"] == step


def test_unreadable_last_checkpoint_falls_back_to_the_previous_one(tmp_path, cache):
    from workbench.training.checkpoint_io import resume_checkpoint

    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    ckpts = out / "rms" / "seed0" / "checkpoints"
    (ckpts / "last.ckpt").write_bytes(b"truncated")
    path, step = resume_checkpoint(ckpts)
    assert path.name == "epoch=0-step=12.ckpt" and step == 12


def test_concurrent_variant_jobs_share_one_run_folder(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}\n  ln: {model: {norm: layernorm}}\n  post: {model: {norm_placement: post}}")
    out = tmp_path / "out"
    # Prepare the data cache first so both jobs start training at once.
    assert main(["show", str(exp)]) == 0
    jobs = [cli("run", str(exp), "--out", str(out), "--variant", v) for v in ("rms", "ln")]
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    assert set(runs(out)) == {("rms", 0), ("ln", 0)}


def test_two_process_ddp_on_cpu_trains_every_rank_and_rank_zero_alone_writes(tmp_path, cache):
    # Lightning's launcher re-runs the command as a second process (gloo on CPU): both ranks train
    # their own slice of every step and evaluate together; only rank 0 records and reports.
    exp = write_experiment(tmp_path, cache, seeds=[0], variants="  rms: {}")
    out = tmp_path / "out"
    job = cli("run", str(exp), "--out", str(out), "train.accelerator=cpu", "train.devices=2", "train.strategy=ddp")
    stdout, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-2000:]
    run = runs(out)[("rms", 0)]
    assert run["status"] == "completed" and run["train_tokens"] == 2 * 12 * 8 * 32
    # Rank 0 writes the report after the run and once more at the end; rank 1 never does.
    assert stdout.count("report: ") == 1 and err.count("wrote ") == 2


PLUGIN = '''
from torch import nn
from components import registry


class Breaks(nn.Module):
    """A linear FFN that misbehaves after a few training calls."""
    def __init__(self, dim, hidden_dim, bias=False):
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self.calls = 0
    def forward(self, x):
        self.calls += self.training
        return self.lin(x) if self.calls <= 5 else self.broken(self.lin(x))

@registry.register("ffn", "wbtest_explode")
class Explode(Breaks):
    """Turns the activations infinite."""
    def broken(self, h):
        return h * float("inf")

@registry.register("ffn", "wbtest_crash")
class Crash(Breaks):
    """Raises."""
    def broken(self, h):
        raise RuntimeError("boom in the ffn")
'''


def test_diverged_and_failed_runs_are_recorded_and_the_sweep_goes_on(tmp_path, cache, sandbox_registry, monkeypatch):
    (tmp_path / "wbtest_plugin.py").write_text(PLUGIN)
    exp = write_experiment(tmp_path, cache, seeds=[0], imports=["wbtest_plugin"],
                           variants="  rms: {}\n  boom: {model: {ffn: wbtest_explode}}\n  crash: {model: {ffn: wbtest_crash}}\n  ln: {model: {norm: layernorm}}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 3  # a failed run: scripts must see it; diverged alone is 0
    done = runs(out)
    assert done["boom", 0]["status"] == "diverged"
    assert done["crash", 0]["status"] == "failed" and "boom in the ffn" in done["crash", 0]["error"]
    assert done["rms", 0]["status"] == done["ln", 0]["status"] == "completed"
    # No checkpoint of the diverged run holds non-finite weights.
    for ckpt in (out / "boom" / "seed0" / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    report = (out / "report.md").read_text()
    assert "diverged" in report.lower() and "boom in the ffn" in report


def test_tensorboard_holds_val_loss_and_hparams_for_every_run(tmp_path, cache):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from workbench.training.tensorboard import FINAL_VAL_LOSS, column

    exp = write_experiment(tmp_path, cache, seeds=[0, 1], variants="  rms: {}\n  ln: {model: {norm: layernorm}}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    for variant in ("rms", "ln"):
        for seed in (0, 1):
            acc = EventAccumulator(str(out / variant / f"seed{seed}"), size_guidance={"scalars": 0})
            acc.Reload()
            val = [e.step for e in acc.Scalars("loss/val")]
            assert val == [4, 6, 8, 9, 10, 12]
            assert "loss/train" in acc.Tags()["scalars"] and any("lr" in t for t in acc.Tags()["scalars"])
            plugins = acc.PluginTagToContent("hparams")
            start = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/session_start_info"]).session_start_info
            verdict = results(out)["variants"]["ln"]["comparison"]["verdict"] if variant == "ln" else "baseline"
            assert start.hparams[column("variant")].string_value == variant
            assert start.hparams[column("verdict")].string_value == verdict
            # HPARAMS' metric: one whole-split point at the last step, the record's final loss (no step-0 scalars)
            (final,) = acc.Scalars(FINAL_VAL_LOSS)
            assert final.step == 12 and final.value == pytest.approx(runs(out)[variant, seed]["final_val_loss"], rel=1e-6)
            assert not any(t.startswith("final") for t in acc.Tags()["scalars"])
