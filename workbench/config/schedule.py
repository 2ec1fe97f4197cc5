"""The learning-rate schedules of ``train.schedule``: the multiplier of the peak LR at each optimizer step.

Both start with the same linear warm-up over ``warmup_steps`` (absolute steps, so every horizon of a steps
sweep shares it), then:

- ``cosine``: a cosine decay from the peak to ``min_lr_ratio`` x peak, spread over the steps after warm-up.
- ``wsd`` (warm-up, stable, decay; Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond
  Fixed Training Durations"): the peak held until the decay start ``round(steps x (1 - cooldown))``, then a
  cool-down to ``min_lr_ratio`` x peak, shaped ``1-sqrt`` (their default, which matches cosine at a 10-20%
  cool-down) or ``linear``: ``1 - (1 - min_lr_ratio) x shape(progress)``.

WSD decays to ``min_lr_ratio`` x peak, as cosine does, rather than to 0 as in Hägele et al.: one key sets the
floor of either schedule, so ``cosine`` vs ``wsd`` at one config differs in shape only, and
``train.min_lr_ratio: 0`` gives the paper's cool-down to zero.

Before its decay start a WSD run's LR does not depend on ``steps``: every horizon of a steps sweep follows
one trajectory until its own cool-down begins, which is what lets the runner branch the shorter horizons off
the longest run (``workbench.horizon_sweep``). Pure Python: the config checks, the runner, ``show`` and
training all read it.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd")
COOLDOWN_SHAPES = ("1-sqrt", "linear")


def decay_start(steps: int, cooldown: float) -> int:
    """The first step of a WSD run's cool-down: ``round(steps x (1 - cooldown))``."""
    return round(steps * (1 - cooldown))


def lr_factor(step: int, train) -> float:
    """Multiplier of the peak LR at 0-based optimizer ``step`` under ``train`` (a TrainSettings): the linear
    warm-up, then ``train.schedule``'s decay (checks.py refuses a WSD cool-down that starts inside the warm-up)."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.schedule == "wsd":
        return _wsd(step, train.steps, train.min_lr_ratio, train.cooldown, train.cooldown_shape)
    return _cosine(step, train.warmup_steps, train.steps, train.min_lr_ratio)


def _cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _wsd(step: int, total_steps: int, min_ratio: float, cooldown: float, shape: str) -> float:
    start = decay_start(total_steps, cooldown)
    if step < start:
        return 1.0
    progress = min(1.0, (step - start) / max(1, total_steps - start))
    decayed = math.sqrt(progress) if shape == "1-sqrt" else progress
    # written as 1 - (...) so the decay start is exactly the peak, as the stable phase before it
    return 1 - (1 - min_ratio) * decayed
