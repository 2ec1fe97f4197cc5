"""Lightning's cost per step: the same model, optimiser, schedule, clipping and batches, trained by
the workbench's LightningModule + Trainer and by a plain PyTorch loop, step by step alternately.

The Trainer is configured as ``workbench.training.run`` configures it (precision, accelerator,
TensorBoard logger, the per-step callbacks of ``training.trainer.run_callbacks``: the run's recorder
and ModelCheckpoint). Evaluation and checkpoint writes are not overhead but work a plain loop would do
too, so their schedules are set past the measured steps. Inside the Trainer's loop a callback runs
one plain step before each Lightning step, so the two are timed back to back on the same batch.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from components import TransformerLM

from ..config.schema import TrainSettings
from .timing import median, spread

log = logging.getLogger(__name__)

NEVER = 10**9  # a step schedule that never fires within a benchmark


class _PlainLoop:
    """The loop one would write by hand, one step at a time: what LMModule + Trainer do, nothing else."""

    def __init__(self, model, train: TrainSettings):
        from ..training.optim import build_optimizer

        self.model, self.clip = model, train.grad_clip
        self.optimizer, self.schedule = build_optimizer(model, train, fused=True)

    def step(self, x, y) -> None:
        loss = self.model(x, targets=y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip if self.clip else float("inf"), foreach=True)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)


def _paired_steps(module, plain: _PlainLoop, train: TrainSettings, batches, folder: Path) -> tuple[list[float], list[float]]:
    """Train ``module`` with Lightning on ``batches``; at the start of each of its steps, a callback
    first runs the plain loop's step on the same batch. Returns (plain seconds, Lightning seconds)
    per step: a Lightning step is the time from the end of one plain step to the start of the next,
    so it holds everything Lightning does (loading, training step, hooks, logging, optimiser)."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader

    from ..training.callbacks import RunRecorder
    from ..training.trainer import build_trainer, run_callbacks

    plain_s: list[float] = []
    marks: list[float] = []  # end of each plain step = start of a Lightning step, then the end of fit

    class Interleave(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            start = time.perf_counter()
            if marks:
                marks.append(start)  # the previous Lightning step ends here
            plain.step(*batch)
            end = time.perf_counter()
            plain_s.append(end - start)
            marks.append(end)

        def on_train_end(self, trainer, pl_module):
            marks.append(time.perf_counter())

    recorder_cfg = dataclasses.replace(train, eval_every=NEVER, checkpoint_every=NEVER, steps=NEVER)
    recorder = RunRecorder(folder / "metrics.json", [], recorder_cfg, "bench", train.tokens_per_step)
    callbacks = [Interleave(), *run_callbacks(recorder, folder / "checkpoints", NEVER)]
    one_process = dataclasses.replace(train, devices=1, strategy="auto", num_nodes=1)
    logger = TensorBoardLogger(save_dir=str(folder), name="bench", version="lightning", default_hp_metric=False)
    trainer = build_trainer(one_process, len(batches), logger, callbacks)
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    lightning_s = [b - a for a, b in zip(marks[0::2], marks[1::2])]
    return plain_s, lightning_s


def overhead_estimate(plain_s: list[float], lightning_s: list[float], logging_steps: set[int]) -> dict:
    """Lightning's extra seconds per step, robustly: the median of (Lightning - plain) over ordinary
    steps, plus the logging steps' further excess spread over their window; as a fraction of the
    median plain step. Medians keep one busy moment from deciding the result; the second term keeps
    costs that come every ``log_every`` steps in it."""
    extra = [b - a for a, b in zip(plain_s, lightning_s)]
    ordinary = [d for i, d in enumerate(extra) if i not in logging_steps]
    logged = [d for i, d in enumerate(extra) if i in logging_steps]
    per_step = median(ordinary)
    per_log = (median(logged) - per_step) if logged else 0.0
    window = len(extra) / max(1, len(logged))
    return {"extra_ms_per_step": 1000 * per_step, "extra_ms_per_logging_step": 1000 * per_log,
            "overhead": (per_step + per_log / window) / median(plain_s)}


def run(train: TrainSettings | Mapping, model_config, windows: int, warm: int = 2) -> dict:
    """Lightning vs plain, step by step on the same batches, over ``windows`` windows of
    ``train.log_every`` steps after ``warm`` steps (see ``overhead_estimate``)."""
    from ..training.module import LMModule

    train = TrainSettings.of(train)
    if train.precision not in ("32", "auto") or train.accelerator not in ("cpu", "auto"):
        log.info("overhead: measured on CPU in fp32 whatever the experiment says")
    train = dataclasses.replace(train, precision="32", accelerator="cpu", compile=False)
    every = train.log_every
    steps = warm + windows * every
    g = torch.Generator().manual_seed(0)
    shape = (train.batch_size, train.seq_len)
    batches = [(torch.randint(0, model_config.vocab_size, shape, generator=g),
                torch.randint(0, model_config.vocab_size, shape, generator=g)) for _ in range(steps)]
    plain = _PlainLoop(TransformerLM(model_config, init_seed=0), train)
    module = LMModule(TransformerLM(model_config, init_seed=0), train)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers, tensorboardX, ...
        for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        plain_s, lightning_s = _paired_steps(module, plain, train, batches, Path(tmp))
    # Step k (from 0) ends at global step k + 1: the logger and RunRecorder act when that is a multiple of log_every.
    logging_steps = {k - warm for k in range(warm, steps) if (k + 1) % every == 0}
    plain_s, lightning_s = plain_s[warm:], lightning_s[warm:]
    estimate = overhead_estimate(plain_s, lightning_s, logging_steps)
    log.info("overhead: plain %.1f ms, lightning %.1f ms per step", 1000 * median(plain_s), 1000 * median(lightning_s))
    return {
        "model": {k: getattr(model_config, k) for k in ("dim", "n_layers", "n_heads", "vocab_size")},
        "batch": {"batch_size": train.batch_size, "seq_len": train.seq_len},
        "steps": len(plain_s), "warm_steps": warm, "log_every": every,
        "plain_ms": 1000 * median(plain_s), "lightning_ms": 1000 * median(lightning_s),
        "spread": {"plain": spread(plain_s), "lightning": spread(lightning_s)},
        **estimate,
        "overhead_total_time": sum(lightning_s) / sum(plain_s) - 1.0,
    }
