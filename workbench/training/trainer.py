"""The Lightning Trainer and callbacks exactly as ``workbench run`` configures them: one place, so
the bench's Lightning-overhead figure measures the same Trainer that trains every run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from ..config.schema import TrainSettings
from .checkpoint_io import AtomicCheckpointIO
from .precision import resolve_precision


def build_strategy(name: str):
    """'fsdp' -> FSDPStrategy wrapping each transformer Block as its own FSDP unit, so a rank
    gathers one layer's weights at a time (a bare 'fsdp' string makes the whole model one unit,
    gathered whole: no memory saved). Every other name ('auto', 'ddp', ...) goes to Lightning as is."""
    if name != "fsdp":
        return name
    from lightning.pytorch.strategies import FSDPStrategy

    from components import Block

    return FSDPStrategy(auto_wrap_policy={Block})


def run_callbacks(recorder: Callback, ckpt_dir: Path, checkpoint_every: int) -> list[Callback]:
    """Every run's callbacks: its recorder (which also logs learning rate, gradient norm, tokens/s and
    MFU to TensorBoard, at the validation loss's step axis) and the newest checkpoint every
    ``checkpoint_every`` steps (plus last.ckpt). Lightning's LearningRateMonitor and ThroughputMonitor
    are not used: they name the curves `lr-AdamW/pg1`, log one step early and wait for a 100-step window."""
    return [
        recorder,
        ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=checkpoint_every, save_top_k=1, save_last=True),
    ]


def build_trainer(train: TrainSettings | Mapping, max_steps: int, logger, callbacks: list[Callback], progress_bar: bool = False) -> L.Trainer:
    """A Trainer for ``train`` (the validated train section): precision, devices, strategy and nodes
    from the config, validation and checkpoint timing left to the workbench's own callbacks,
    checkpoints written atomically."""
    train = TrainSettings.of(train)
    return L.Trainer(
        max_steps=max_steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
        precision=resolve_precision(train.precision, train.accelerator),
        accelerator=train.accelerator, devices=train.devices, strategy=build_strategy(train.strategy),
        num_nodes=train.num_nodes, log_every_n_steps=train.log_every,
        logger=logger, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress_bar, enable_model_summary=False, deterministic=False,
    )
