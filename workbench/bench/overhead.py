"""Lightning's cost per step: the same model, optimiser, schedule, clipping and batches, trained by
the workbench's LightningModule + Trainer and by a plain PyTorch loop.

The Trainer is configured as ``workbench.training.run`` configures it (precision, accelerator,
logger, the per-step callbacks RunRecorder, LearningRateMonitor, ThroughputMonitor and
ModelCheckpoint). Evaluation and checkpoint writes are not overhead but work a plain loop would do
too, so their schedules are set past the measured steps. A step's time is the wall time between
the starts of consecutive steps, so data loading, hooks and logging all count; each block's mean
over its steady-state steps is compared, blocks interleaved (plain, Lightning, plain, ...).
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import torch

from components import TransformerLM

from .timing import median, paired_ratio, spread

log = logging.getLogger(__name__)

NEVER = 10**9  # a step schedule that never fires within a benchmark


def _plain_steps(model, train: dict, batches, stamps: list[float]) -> None:
    """The loop one would write by hand: what LMModule + Trainer do, nothing else."""
    from ..training.optim import build_optimizer

    optimizer, schedule = build_optimizer(model, train, fused=True)
    clip = train["grad_clip"]
    for x, y in batches:
        stamps.append(time.perf_counter())
        loss = model(x, targets=y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip else float("inf"), foreach=True)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    stamps.append(time.perf_counter())


def _lightning_steps(module, train: dict, batches, stamps: list[float], folder: Path) -> None:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ThroughputMonitor
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader

    from ..training.callbacks import RunRecorder
    from ..training.precision import resolve_precision

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            stamps.append(time.perf_counter())

        def on_train_end(self, trainer, pl_module):
            stamps.append(time.perf_counter())

    recorder_cfg = {**train, "eval_every": NEVER, "checkpoint_every": NEVER, "steps": NEVER}
    tokens = train["batch_size"] * train["seq_len"]
    callbacks = [
        Clock(),
        RunRecorder(folder / "metrics.json", [], recorder_cfg, "bench", tokens),
        ModelCheckpoint(dirpath=folder / "checkpoints", every_n_train_steps=NEVER, save_top_k=1, save_last=True),
        LearningRateMonitor(logging_interval="step"),
        ThroughputMonitor(batch_size_fn=lambda b: b[0].shape[0], length_fn=lambda b: b[0].numel()),
    ]
    trainer = L.Trainer(
        max_steps=len(batches), max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
        precision=resolve_precision(train["precision"], train["accelerator"]),
        accelerator=train["accelerator"], devices=1, log_every_n_steps=train["log_every"],
        logger=TensorBoardLogger(save_dir=str(folder), name="bench", version="lightning", default_hp_metric=False),
        callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=True,
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))


def _mean_step(stamps: list[float], warm: int) -> float:
    """Mean seconds per step after the first ``warm`` steps (stamps: the start of each step, then the end)."""
    steady = stamps[warm:]
    return (steady[-1] - steady[0]) / (len(steady) - 1)


def run(train: dict, model_config, blocks: int, steps: int, warm: int = 2) -> dict:
    """Interleave ``blocks`` plain and Lightning blocks of ``steps`` steps; the overhead is the median
    over blocks of (Lightning step / plain step) - 1."""
    from ..training.module import LMModule

    if train["precision"] not in ("32", "auto") or train["accelerator"] not in ("cpu", "auto"):
        log.info("overhead: measured on CPU in fp32 whatever the experiment says")
    train = {**train, "precision": "32", "accelerator": "cpu", "compile": False}
    g = torch.Generator().manual_seed(0)
    shape = (train["batch_size"], train["seq_len"])
    batches = [(torch.randint(0, model_config.vocab_size, shape, generator=g),
                torch.randint(0, model_config.vocab_size, shape, generator=g)) for _ in range(steps)]
    plain_model = TransformerLM(model_config, init_seed=0)
    module = LMModule(TransformerLM(model_config, init_seed=0), train)
    plain, lightning = [], []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers, tensorboardX, ...
        for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        for b in range(blocks):
            stamps: list[float] = []
            _plain_steps(plain_model, train, batches, stamps)
            plain.append(_mean_step(stamps, warm))
            stamps = []
            _lightning_steps(module, train, batches, stamps, Path(tmp) / f"block{b}")
            lightning.append(_mean_step(stamps, warm))
            log.info("overhead: block %d/%d  plain %.1f ms  lightning %.1f ms", b + 1, blocks,
                     1000 * plain[-1], 1000 * lightning[-1])
    return {
        "model": {k: getattr(model_config, k) for k in ("dim", "n_layers", "n_heads", "vocab_size")},
        "batch": {"batch_size": train["batch_size"], "seq_len": train["seq_len"]},
        "blocks": blocks, "steps_per_block": steps, "warm_steps": warm,
        "plain_ms": 1000 * median(plain), "lightning_ms": 1000 * median(lightning),
        "spread": {"plain": spread(plain), "lightning": spread(lightning)},
        "overhead": paired_ratio(lightning, plain) - 1.0,
    }
