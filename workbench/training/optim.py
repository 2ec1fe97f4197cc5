"""AdamW over ``components.parametrization.param_groups`` (decay on matrices only; per-role lr, eps and
decay under mup / completep), stepped by ``train.schedule`` (warm-up, then cosine or WSD:
``workbench.config.schedule``, pure, since the config checks read it too)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from components.parametrization import param_groups

from ..config.schedule import lr_factor
from ..config.schema import TrainSettings


def build_optimizer(model: nn.Module, train: TrainSettings | Mapping, fused: bool) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (one fused kernel when ``fused``) and its per-step schedule, sized from train.steps
    (never from the trainer's estimate, which breaks loader-state restore: Lightning #20550)."""
    train = TrainSettings.of(train)
    groups = param_groups(model, train.lr, train.weight_decay, hidden_lr_ratio=train.hidden_lr_ratio)  # per-role lr / eps / wd under mup, completep
    optimizer = torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2), fused=fused)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, train))
    return optimizer, schedule
