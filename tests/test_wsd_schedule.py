"""train.schedule: wsd against a closed-form float64 computation of Hägele et al. (2024)'s schedule, the
optimizer's learning rates under it, and its three keys refused in one line with exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.config.schedule import decay_start, lr_factor
from workbench.config.schema import TrainSettings
from workbench.training.optim import build_optimizer


def closed_form(steps: int, warmup: int, cooldown: float, min_ratio: float, shape: str) -> np.ndarray:
    """Peak-LR multipliers of steps 0..steps-1 in float64: linear warm-up, constant, then
    1 - (1 - min_ratio) * g((t - t_decay) / (steps - t_decay)), g = sqrt (1-sqrt) or identity (linear)."""
    t = np.arange(steps, dtype=np.float64)
    t_decay = np.floor(steps * (1.0 - cooldown) + 0.5)  # the cases below are never halfway
    progress = np.clip((t - t_decay) / (steps - t_decay), 0.0, None)
    g = np.sqrt(progress) if shape == "1-sqrt" else progress
    return np.where(t < warmup, (t + 1) / max(warmup, 1), np.where(t < t_decay, 1.0, 1.0 - (1.0 - min_ratio) * g))


CASES = [(400, 20, 0.2, 0.1, "1-sqrt"), (400, 20, 0.2, 0.0, "1-sqrt"), (100, 0, 0.25, 0.1, "linear"),
         (37, 5, 0.3, 0.05, "1-sqrt"), (1000, 100, 0.1, 0.0, "linear"), (16, 2, 0.25, 0.1, "1-sqrt")]


@pytest.mark.parametrize("steps,warmup,cooldown,min_ratio,shape", CASES)
def test_wsd_factor_matches_the_closed_form(steps, warmup, cooldown, min_ratio, shape):
    train = TrainSettings(steps=steps, warmup_steps=warmup, schedule="wsd", cooldown=cooldown, min_lr_ratio=min_ratio,
                          cooldown_shape=shape)
    ours = np.array([lr_factor(t, train) for t in range(steps)])
    np.testing.assert_allclose(ours, closed_form(steps, warmup, cooldown, min_ratio, shape), rtol=0, atol=1e-12)


def test_the_decay_start_is_rounded_and_the_peak_holds_exactly_until_it():
    assert decay_start(400, 0.2) == 320 and decay_start(200, 0.2) == 160 and decay_start(100, 0.2) == 80
    assert decay_start(37, 0.3) == 26  # 25.9
    train = TrainSettings(steps=100, warmup_steps=10, schedule="wsd", cooldown=0.2, min_lr_ratio=0.3)
    assert [lr_factor(t, train) for t in (9, 10, 79, 80)] == [1.0, 1.0, 1.0, 1.0]  # exactly: branches rely on it
    assert lr_factor(81, train) < 1.0


def test_every_horizon_follows_one_trajectory_until_its_own_decay_start():
    """What horizon branching rests on: up to a shorter horizon's decay start, the longer run's LR is its LR."""
    long = TrainSettings(steps=400, warmup_steps=20, schedule="wsd", cooldown=0.2)
    for steps in (100, 200):
        short = TrainSettings(steps=steps, warmup_steps=20, schedule="wsd", cooldown=0.2)
        start = decay_start(steps, 0.2)
        assert all(lr_factor(t, short) == lr_factor(t, long) for t in range(start + 1))
        assert lr_factor(start + 1, short) < lr_factor(start + 1, long)


def test_the_optimizer_follows_the_wsd_schedule_step_by_step():
    train = TrainSettings(steps=16, warmup_steps=2, schedule="wsd", cooldown=0.25, lr=0.01, min_lr_ratio=0.1)
    model = torch.nn.Linear(4, 4)
    optimizer, schedule = build_optimizer(model, train, fused=False)
    expected = 0.01 * closed_form(16, 2, 0.25, 0.1, "1-sqrt")
    seen = []
    for _ in range(16):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    np.testing.assert_allclose(seen, expected, rtol=1e-12, atol=0)
    assert seen[-1] > 0.01 * 0.1  # the last step is one step short of the floor, as cosine's is


EXPERIMENT = """
name: wsd_bad
defaults: [{configs}/model/llama.yaml, {configs}/size/tiny.yaml, {configs}/data/stdlib.yaml, {configs}/train/cpu.yaml]
train: {{schedule: wsd, cooldown: 0.2, warmup_steps: 20}}
sweep: {{train.steps: [100, 200, 400]}}
"""


@pytest.mark.parametrize("override,key,text", [
    ("train.schedule=wsd2", "train.schedule", "allowed: cosine, wsd"),
    ("train.cooldown=1", "train.cooldown", "allowed: a number in (0, 1)"),
    ("train.cooldown=0", "train.cooldown", "allowed: a number in (0, 1)"),
    ("train.cooldown=-0.5", "train.cooldown", "allowed: a number in (0, 1)"),
    ("train.cooldown_shape=sqrt", "train.cooldown_shape", "allowed: 1-sqrt, linear"),
    ("train.cooldown=0.001", "train.cooldown", "leaves the wsd cool-down no step"),
    # the shortest horizon's decay start (round(100 x 0.2) = 20) falls before the warm-up ends at 30
    ("train.cooldown=0.8", "train.warmup_steps", "the cool-down starts at step 20"),
])
def test_bad_schedule_values_exit_2_in_one_line(tmp_path, capsys, override, key, text):
    from e2e import CONFIGS

    path = tmp_path / "wsd_bad.yaml"
    path.write_text(EXPERIMENT.format(configs=CONFIGS).replace("warmup_steps: 20", "warmup_steps: 30"))
    assert main(["show", str(path), override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err and text in err, err
    assert ("command line" if key != "train.warmup_steps" else "wsd_bad.yaml") in err
    if key == "train.warmup_steps":
        assert "[variant 'base@steps100']" in err  # the horizon whose cool-down starts too early


def test_the_valid_sweep_loads(tmp_path, capsys):
    from e2e import CONFIGS

    path = tmp_path / "wsd_ok.yaml"
    path.write_text(EXPERIMENT.format(configs=CONFIGS))
    assert main(["show", str(path)]) == 0
