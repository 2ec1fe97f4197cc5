"""budget: what every variant holds equal, resolved into each variant's ``train.steps`` at load time.

One step trains ``batch_size * seq_len * world_size`` tokens and ``flops_per_token`` times that many
FLOPs, so each kind becomes steps as follows (rounded to the nearest step, so the recorded total is
within half a step of the budget):

    steps: N               N
    tokens: T              T / tokens_per_step
    flops: X               X / (flops_per_token * tokens_per_step)
    tokens_per_param: R    R * params / tokens_per_step

``params`` is the *total* parameter count (tied weights once): Chinchilla's 20 tokens per parameter
(Hoffmann et al., 2022) was fitted on total parameters, while Kaplan et al. (2020) used
non-embedding ones, which is most of why the two papers' optima differ (Pearce & Song, 2024).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .errors import COMMAND_LINE, ConfigError
from .experiment import Experiment, Variant
from .schema import TrainSettings

KINDS = ("steps", "tokens", "flops", "tokens_per_param")
KINDS_RULE = "exactly one of {steps: N}, {tokens: N}, {flops: X}, {tokens_per_param: R}"


@dataclass(frozen=True)
class StepCost:
    """What one optimizer step of a variant costs."""

    tokens: int  # batch_size * seq_len * world_size
    flops: int  # tokens * flops_per_token
    params: int  # total parameters (the tokens_per_param budget)


def world_size(train: TrainSettings | Mapping) -> int:
    """Devices x nodes one global step spans, as Lightning will resolve ``train.devices`` (on this
    machine: ``auto`` on a GPU counts its GPUs)."""
    train = TrainSettings.of(train)
    devices, nodes, accelerator = train.devices, train.num_nodes, train.accelerator
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if isinstance(devices, int) and devices >= 1:
        count = devices
    elif isinstance(devices, str) and re.fullmatch(r"\d+(,\d+)*,?", devices):
        count = len([d for d in devices.split(",") if d])
    else:  # "auto" or -1: every GPU, or one CPU process
        count = max(1, torch.cuda.device_count()) if on_gpu else 1
    return count * nodes


def step_cost(variant: Variant) -> StepCost:
    """Tokens, FLOPs and parameters of ``variant``, from its model built on the meta device."""
    model = variant.meta_model()
    tokens = variant.train.tokens_per_step * world_size(variant.train)
    return StepCost(tokens, tokens * model.flops_per_token(variant.train.seq_len), model.num_params())


def budget_kind(spec: dict | None) -> tuple[str, float] | None:
    """``{"flops": 1e13}`` -> ``("flops", 1e13)``; None without a budget."""
    if spec is None:
        return None
    (kind, value), = spec.items()
    return kind, value


def exact_steps(kind: str, value: float, cost: StepCost) -> float:
    """The budget in (fractional) steps of a variant with ``cost``."""
    if kind == "steps":
        return float(value)
    if kind == "tokens":
        return value / cost.tokens
    if kind == "flops":
        return value / cost.flops
    if kind == "tokens_per_param":
        return value * cost.params / cost.tokens
    raise ValueError(f"unknown budget kind {kind!r}")


def _one_step(kind: str, cost: StepCost) -> str:
    if kind == "tokens":
        return f"{cost.tokens:,} tokens"
    if kind == "flops":
        return f"{cost.flops:.3g} FLOPs"
    return f"{cost.tokens / cost.params:.3g} tokens per parameter ({cost.tokens:,} tokens / {cost.params:,} parameters)"


def check_budget(exp: Experiment) -> None:
    """The spec's shape: exactly one kind, a positive finite number (steps: an integer)."""
    if exp.budget is None:
        return
    set_keys = [k for k, v in exp.budget.items() if v is not None]
    source, written = exp.origins.get(f"budget.{set_keys[0]}" if len(set_keys) == 1 else "budget", (str(exp.path), "budget"))
    if len(set_keys) != 1:
        got = ", ".join(set_keys) or "nothing"
        raise ConfigError(source, "budget", f"{got} given: a budget holds one quantity equal across variants", KINDS_RULE)
    kind, value = set_keys[0], exp.budget[set_keys[0]]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if kind == "steps" and (not ok or value != int(value)):
        raise ConfigError(source, written, f"invalid value {value!r}", "an integer >= 1")
    if not ok:
        raise ConfigError(source, written, f"invalid value {value!r}", "a number > 0")


def budget_steps(exp: Experiment) -> dict[str, int]:
    """Every variant's train.steps under the budget (``{}`` without one); ConfigError if one gets less
    than a step, or if train.steps is set by hand (in the experiment or on the command line) to
    something else."""
    check_budget(exp)
    spec = budget_kind(exp.budget)
    if spec is None:
        return {}
    kind, value = spec
    source, written = exp.origins.get(f"budget.{kind}", (str(exp.path), f"budget.{kind}"))
    steps = {}
    for variant in exp.variants.values():
        cost = step_cost(variant)
        exact = exact_steps(kind, value, cost)
        if exact < 1:
            raise ConfigError(source, written, f"{value:g} is less than one training step of variant '{variant.name}' "
                              f"(one step = {_one_step(kind, cost)})", f"at least {_one_step(kind, cost)}")
        steps[variant.name] = int(round(exact))
        by_hand = variant.origins.get("train.steps")
        if by_hand and (by_hand[0] == COMMAND_LINE or by_hand[0] == str(exp.path)) and variant.train.steps != steps[variant.name]:
            raise ConfigError(by_hand[0], by_hand[1], f"train.steps={variant.train.steps} conflicts with "
                              f"budget.{kind}={value:g}, which gives variant '{variant.name}' {steps[variant.name]} steps",
                              "no train.steps with a budget; for a quick run set budget.steps=N instead")
    return steps
