"""A WSD horizon sweep end to end (CPU, fp32, a tiny model): each shorter horizon branches off the longest run
at its decay start and trains only its cool-down, and comes out as its own run from scratch would: the same
final loss, weights and metrics.json, to 1e-6. A crash mid-branch or mid-trunk resumes to the same results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from e2e import runs, write_experiment
from workbench.checkpoint_file import load_verified
from workbench.cli import main
from workbench.training.callbacks import RunRecorder

pytestmark = pytest.mark.e2e

HORIZONS, COOLDOWN = (8, 16, 32), 0.25  # decay starts 6, 12 (24 for the trunk); warm-up 2 steps
WSD = ["train.schedule=wsd", f"train.cooldown={COOLDOWN}"]
SWEEP = f"sweep: {{train.steps: {list(HORIZONS)}}}"


def decay(steps: int) -> int:
    return round(steps * (1 - COOLDOWN))


def sweep(folder: Path, cache: Path, every: int = 4) -> Path:
    return write_experiment(folder, cache, name="hz", steps=None, every=every, seeds=(0,), variants="  rms: {}", extra=SWEEP)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, cache) -> dict[int, Path]:
    """Each shorter horizon trained alone, from scratch (an experiment of one run): its seed folder."""
    out = {}
    for steps in HORIZONS[:2]:
        root = tmp_path_factory.mktemp(f"scratch{steps}")
        exp = write_experiment(root, cache, name=f"h{steps}", steps=steps, every=4, seeds=(0,), variants="  rms: {}")
        assert main(["run", str(exp), "--out", str(root / "out"), *WSD]) == 0
        out[steps] = root / "out" / "rms" / "seed0"
    return out


@pytest.fixture(scope="module")
def branched(tmp_path_factory, cache) -> Path:
    root = tmp_path_factory.mktemp("branched")
    assert main(["run", str(sweep(root, cache)), "--out", str(root / "out"), *WSD]) == 0
    return root / "out"


def final_weights(seed_dir: Path) -> dict[str, torch.Tensor]:
    return load_verified(seed_dir / "checkpoints" / "last.ckpt")["state_dict"]


def assert_same_run(seed_dir: Path, reference: Path, curves: bool = True) -> None:
    """Final val loss and every weight within 1e-6 of the reference run's, and (``curves``) its metrics.json."""
    record, ref = (json.loads((d / "record.json").read_text()) for d in (seed_dir, reference))
    assert record["status"] == ref["status"] == "completed" and record["steps"] == ref["steps"]
    assert record["final_val_loss"] == pytest.approx(ref["final_val_loss"], abs=1e-6)
    mine, theirs = final_weights(seed_dir), final_weights(reference)
    assert mine.keys() == theirs.keys()
    assert max((mine[k] - theirs[k]).abs().max().item() for k in mine) <= 1e-6
    if curves:
        got, want = (json.loads((d / "metrics.json").read_text()) for d in (seed_dir, reference))
        for kind in ("train", "val"):
            assert [p["step"] for p in got[kind]] == [p["step"] for p in want[kind]], kind
            for a, b in zip(got[kind], want[kind]):
                assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a.get("lr") == pytest.approx(b.get("lr"), abs=1e-12)


def test_each_branch_equals_its_run_from_scratch_and_trains_only_its_cooldown(branched, scratch):
    done = runs(branched)
    trunk = done["rms@steps32", 0]
    assert trunk["branched_from"] is None and trunk["trained_steps"] == 32
    for steps in HORIZONS[:2]:
        record = done[f"rms@steps{steps}", 0]
        assert record["branched_from"] == "rms@steps32" and record["branch_step"] == decay(steps)
        assert record["trained_steps"] == steps - decay(steps) and record["steps"] == steps
        assert_same_run(branched / f"rms@steps{steps}" / "seed0", scratch[steps])
    trained = sum(r["trained_steps"] for r in done.values())
    assert trained == 32 + (16 - 12) + (8 - 6) == 38  # of 56 as separate runs
    # the trunk kept a checkpoint at each shorter horizon's decay start
    assert sorted(p.name for p in (branched / "rms@steps32" / "seed0" / "checkpoints").glob("branch-step=*.ckpt")) == [
        "branch-step=12.ckpt", "branch-step=6.ckpt"]


def crash_at(monkeypatch, steps: int, at: int) -> list:
    """The run of ``steps`` steps dies at step ``at`` (before that step's checkpoint), once: a crash mid-run."""
    original, fired = RunRecorder.on_train_batch_end, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.total_steps == steps and trainer.global_step == at and not fired:
            fired.append(at)
            raise RuntimeError(f"simulated crash at step {at}")
        return original(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(RunRecorder, "on_train_batch_end", on_train_batch_end)
    return fired


def test_a_branch_crashed_mid_cooldown_resumes_from_its_own_checkpoint(tmp_path, cache, scratch, monkeypatch):
    exp, out = sweep(tmp_path, cache, every=2), tmp_path / "out"
    fired = crash_at(monkeypatch, 16, 15)  # the 16-step branch starts at 12, saves 14, dies at 15
    assert main(["run", str(exp), "--out", str(out), *WSD]) == 3  # the sweep ran, one run failed
    assert fired == [15] and runs(out)["rms@steps16", 0]["status"] == "failed"
    monkeypatch.undo()
    assert main(["run", str(exp), "--out", str(out), *WSD]) == 0
    record = runs(out)["rms@steps16", 0]
    assert record["status"] == "completed" and record["resumed_from_step"] == 14
    assert record["branched_from"] == "rms@steps32" and record["branch_step"] == 12 and record["trained_steps"] == 4
    assert_same_run(out / "rms@steps16" / "seed0", scratch[16], curves=False)  # every=2 here: another curve


def test_a_trunk_crashed_before_a_decay_start_lets_that_horizon_train_from_scratch_then_resumes(tmp_path, cache, scratch,
                                                                                                    monkeypatch):
    exp, out = sweep(tmp_path, cache), tmp_path / "out"
    crash_at(monkeypatch, 32, 10)  # after step 6's branch checkpoint, before step 12's
    assert main(["run", str(exp), "--out", str(out), *WSD]) == 3
    first = runs(out)
    assert first["rms@steps32", 0]["status"] == "failed"
    assert first["rms@steps8", 0]["branched_from"] == "rms@steps32" and first["rms@steps8", 0]["trained_steps"] == 2
    assert first["rms@steps16", 0]["branched_from"] is None and first["rms@steps16", 0]["trained_steps"] == 16
    monkeypatch.undo()
    assert main(["run", str(exp), "--out", str(out), *WSD]) == 0
    trunk = runs(out)["rms@steps32", 0]
    assert trunk["status"] == "completed" and trunk["resumed_from_step"] == 8 and trunk["trained_steps"] == 32
    for steps in HORIZONS[:2]:
        assert_same_run(out / f"rms@steps{steps}" / "seed0", scratch[steps], curves=steps == 8)


def test_a_damaged_or_foreign_trunk_checkpoint_is_skipped_for_the_next_trunk_or_scratch(branched, tmp_path, caplog):
    import shutil

    from workbench.checkpoint_file import IDENTITY_KEY
    from workbench.config.schema import TrainSettings
    from workbench.training.branch import Horizon, start_branch

    trunk = branched / "rms@steps32" / "seed0" / "checkpoints"
    identity = load_verified(branched / "rms@steps16" / "seed0" / "checkpoints" / "last.ckpt")[IDENTITY_KEY]
    train = TrainSettings.of(identity["config"]["train"])
    good = ("rms@steps32", trunk)
    path, step, curves = start_branch(Horizon(trunks=(good,)), train, identity, tmp_path / "a", "t")
    assert step == 12 and path == tmp_path / "a" / "branch-step=12.ckpt" and max(p["step"] for p in curves["val"]) <= 12
    started = load_verified(path)
    assert started[IDENTITY_KEY] == identity and started["global_step"] == 12
    assert started["callbacks"][RunRecorder.STATE_KEY]["branched_from"] == {"run_group": "rms@steps32", "step": 12}

    foreign = {**identity, "config": {**identity["config"], "train": {**identity["config"]["train"], "lr": 0.5}}}
    assert start_branch(Horizon(trunks=(good,)), train, foreign, tmp_path / "b", "t") is None
    assert "another config" in caplog.text and "train.lr" in caplog.text and not (tmp_path / "b").exists()

    damaged = tmp_path / "damaged"
    shutil.copytree(trunk, damaged)
    blob = bytearray((damaged / "branch-step=12.ckpt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (damaged / "branch-step=12.ckpt").write_bytes(bytes(blob))
    assert start_branch(Horizon(trunks=(("broken", damaged),)), train, identity, tmp_path / "c", "t") is None
    assert "DamagedCheckpoint" in caplog.text
    assert start_branch(Horizon(trunks=(("broken", damaged), good)), train, identity, tmp_path / "d", "t")[1] == 12
