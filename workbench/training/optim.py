"""AdamW with decoupled weight decay on matrices only, stepped by ``train.schedule`` (warm-up, then cosine or
WSD: ``workbench.config.schedule``, pure, since the config checks read it too)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..config.schedule import lr_factor
from ..config.schema import TrainSettings


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay Linear weights; never norms, biases, embeddings or position tables (GPT-3, LLaMA practice)."""
    decay_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embed_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        # A tied LM head is the embedding: it follows the embedding (no decay).
        (decay if id(p) in decay_ids and id(p) not in embed_ids else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, train: TrainSettings | Mapping, fused: bool) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (one fused kernel when ``fused``) and its per-step schedule, sized from train.steps
    (never from the trainer's estimate, which breaks loader-state restore: Lightning #20550)."""
    train = TrainSettings.of(train)
    groups = param_groups(model, train.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2), fused=fused)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, train))
    return optimizer, schedule
