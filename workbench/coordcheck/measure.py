"""The coordinate check: train a config at several widths (or depths) for a few steps, probing activations.

At each size the model is built from the variant's resolved model keys with only ``model.dim`` (or
``model.n_layers``) changed, so ``n_heads`` stays and the head size grows with the width. It trains
``steps`` AdamW steps on the experiment's own training batches (``workbench.data.train_batch``, the
stream a run of that seed sees), through the parametrization's parameter groups at the config's
``train.lr``, betas, weight decay and gradient clipping, at a constant learning rate: no warm-up and no
decay, so every size takes the same steps (nanoGPT-mup's coordinate checks, ``decay_lr=False``). It
trains in fp32 on the device training would use. After each step, ``ActivationProbe`` measures every
module kind on one fixed validation batch; each value is then averaged over the seeds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from components import TransformerConfig, TransformerLM
from components.parametrization import param_groups

from ..config.schema import TrainSettings
from ..data import train_batch
from .probe import KINDS, ActivationProbe
from .verdict import verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    """What varies: ``axis`` "width" (model.dim) or "depth" (model.n_layers), over ``sizes`` in increasing order."""

    axis: str
    sizes: tuple[int, ...]

    @property
    def field(self) -> str:
        """The TransformerConfig field the sweep sets."""
        return {"width": "dim", "depth": "n_layers"}[self.axis]

    @property
    def flag(self) -> str:
        """The command-line flag that gives the sizes (and the JSON key that lists them, without dashes)."""
        return {"width": "--widths", "depth": "--depths"}[self.axis]


@dataclass
class CoordCheck:
    """The measured activation scales: ``curves[kind][step - 1][i]`` is kind's mean |activation| after
    ``step`` steps at ``sweep.sizes[i]``, averaged over ``seeds`` seeds."""

    parametrization: str
    sweep: Sweep
    steps: int
    seeds: int
    curves: dict[str, list[list[float]]]
    base: str | None = None  # the base shape the sizes are measured against, e.g. "base_dim 64, from model.base_dim"

    @property
    def scales(self) -> dict[str, list[float]]:
        """{kind: one value per size} after the last step."""
        return {kind: curve[-1] for kind, curve in self.curves.items()}

    @property
    def verdicts(self) -> dict[str, str]:
        return {kind: verdict(values) for kind, values in self.scales.items()}


def sweep_models(model: dict, sweep: Sweep) -> tuple[list[dict], str | None]:
    """The model keys at each size, and which base shape the sweep is measured against (None under standard).

    Under a width-transferring parametrization an unset ``base_dim`` means "this config is its own base",
    which would make every width its own base and the check vacuous, so the smallest width given becomes
    the base; likewise the smallest depth becomes ``base_layers`` for completep over depth."""
    model = dict(model)
    parametrization = model["parametrization"]
    field, axis_name = {"width": ("base_dim", "width"), "depth": ("base_layers", "depth")}[sweep.axis]
    note = None
    if parametrization != "standard" and (sweep.axis == "width" or parametrization == "completep"):
        if model[field] is None:
            model[field] = min(sweep.sizes)
            note = f"{field} {model[field]}, the smallest {axis_name} given: model.{field} is unset"
        else:
            note = f"{field} {model[field]}, from model.{field}"
    return [{**model, sweep.field: size} for size in sweep.sizes], note


def _optimizer(model: TransformerLM, train: TrainSettings) -> torch.optim.AdamW:
    """AdamW over the parametrization's groups (per-role lr, eps, weight decay), at a constant ``train.lr``."""
    groups = param_groups(model, train.lr, train.weight_decay, hidden_lr_ratio=train.hidden_lr_ratio)
    return torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2))


def probe_training(config: TransformerConfig, train: TrainSettings, tokens: np.ndarray, probe: torch.Tensor,
                   steps: int, seed: int, device: torch.device) -> list[dict[str, float]]:
    """{kind: mean |activation|} on ``probe`` after each of ``steps`` training steps of a fresh model
    (weights from ``init_seed=seed``, batches ``train_batch(tokens, step, seed, ...)`` from step 0)."""
    model = TransformerLM(config, init_seed=seed).to(device)
    optimizer = _optimizer(model, train)
    parameters = list(model.parameters())
    watch = ActivationProbe(model)
    probe = probe.to(device)
    measured = []
    model.train()
    for step in range(steps):
        x, y = train_batch(tokens, step, seed, train.batch_size, train.seq_len)
        loss = model(x.to(device), targets=y.to(device))
        loss.backward()
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_(parameters, train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        measured.append(watch.measure(probe))
    watch.remove()
    return measured


def coord_check(configs: list[TransformerConfig], parametrization: str, sweep: Sweep, train: TrainSettings,
                tokens: np.ndarray, probe: torch.Tensor, steps: int, seeds: int, device: torch.device,
                base: str | None = None) -> CoordCheck:
    """Probe every config of ``configs`` (one per ``sweep.sizes``) over seeds 0..seeds-1 and average."""
    total = {kind: [[0.0] * len(configs) for _ in range(steps)] for kind in KINDS}
    for i, (size, config) in enumerate(zip(sweep.sizes, configs)):
        for seed in range(seeds):
            started = time.perf_counter()
            for step, values in enumerate(probe_training(config, train, tokens, probe, steps, seed, device)):
                for kind in KINDS:
                    total[kind][step][i] += values[kind] / seeds
            log.info("coordcheck: %s %d, seed %d: %d steps in %.1f s", sweep.axis, size, seed, steps,
                     time.perf_counter() - started)
    return CoordCheck(parametrization, sweep, steps, seeds, total, base)
