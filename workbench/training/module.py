"""The LightningModule: a TransformerLM, its loss, optimiser and schedule. Data comes from outside."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch

from components import TransformerLM

from ..checkpoint_file import IDENTITY_KEY
from ..config.schema import TrainSettings
from .optim import build_optimizer


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@torch.no_grad()
def evaluate(model: TransformerLM, batches, device: torch.device, forward_context) -> float:
    """Mean loss over fixed held-out batches (equal sizes), in eval mode, under ``forward_context``."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    with forward_context:
        for x, y in batches:
            total += model(x.to(device), targets=y.to(device))
    model.train(was_training)
    return total.item() / len(batches)


class LMModule(L.LightningModule):
    """Trains ``model`` on (x, y) token batches; ``train`` is the resolved ``train:`` config mapping.

    ``identity`` (config + corpus fingerprint, see ``run.run_identity``) is written into every checkpoint.
    """

    def __init__(self, model: TransformerLM, train: TrainSettings | Mapping, identity: dict | None = None):
        super().__init__()
        self.model = model
        self.train_cfg = TrainSettings.of(train)
        self.identity = identity
        # The last step's gradient norm (before clipping), a device tensor: the RunRecorder reads it on
        # logging steps only, so other steps never wait for the device.
        self.grad_norm: torch.Tensor | None = None
        if self.train_cfg.compile:
            self.model.compile()  # in place: state_dict keys unchanged, checkpoints stay portable

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """The model's loss (or logits): what evaluation calls through an FSDP root wrapper."""
        return self.model(x, targets=targets)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.identity is not None:
            checkpoint[IDENTITY_KEY] = self.identity

    def training_step(self, batch, batch_idx):
        x, y = batch
        # The LM head fused with the loss (components.loss). Logged by the RunRecorder, not self.log:
        # Lightning would log it one step early and add an `epoch` scalar.
        return self.model(x, targets=y)

    def on_before_optimizer_step(self, optimizer):
        # Clipping here rather than through Trainer(gradient_clip_val): Lightning refuses that with a
        # fused optimizer. Grads are unscaled by now (fp16 uses an unfused optimizer, see optim.py).
        max_norm = self.train_cfg.grad_clip or float("inf")
        sharded = _fsdp_root(self.trainer.model)
        if sharded is not None:  # each rank holds a shard of every gradient: FSDP all-reduces the norm
            norm = sharded.clip_grad_norm_(max_norm)
        else:  # one device, or DDP (gradients already all-reduced, the same on every rank)
            norm = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm, foreach=True)
        self.grad_norm = norm.detach()

    def configure_optimizers(self):
        fused = self.device.type in ("cpu", "cuda") and self.trainer.precision != "16-mixed"
        optimizer, schedule = build_optimizer(self.model, self.train_cfg, fused)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _fsdp_root(model):
    """``model`` if it is an FSDP-wrapped root module (``train.strategy: fsdp``), else None."""
    if not torch.distributed.is_available():
        return None
    from torch.distributed.fsdp import FullyShardedDataParallel

    return model if isinstance(model, FullyShardedDataParallel) else None


def eval_forward(trainer, module: LMModule):
    """What evaluation calls: under FSDP the root wrapper, whose forward gathers the sharded weights
    (the bare TransformerLM would see only this rank's shard of the embeddings and head); else the
    TransformerLM itself (one device, or DDP, where every rank holds all weights)."""
    root = _fsdp_root(trainer.model)
    return module.model if root is None else root
