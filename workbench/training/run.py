"""Train one (variant, seed) with Lightning and return its results.json record.

Everything the run writes lives in its own folder ``RUN_DIR/<variant>/seed<k>/``: TensorBoard events,
``checkpoints/`` and ``metrics.json``. Calling this again on an interrupted folder resumes from the
newest readable checkpoint.
"""

from __future__ import annotations

import logging
import math
import resource
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from components import TransformerLM

from ..config.budget import world_size
from ..data import TokenData, batch_fingerprint, val_batches
from .batches import StepBatches
from .callbacks import RunRecorder
from .checkpoint_io import resume_checkpoint
from .length_eval import length_losses
from .module import Diverged, LMModule, eval_forward, evaluate
from .progress import RunProgressBar
from .trainer import build_trainer, run_callbacks

log = logging.getLogger("workbench")

# Lightning's chatter that says nothing about this run.
for _pattern in (".*does not have many workers.*", ".*Checkpoint directory.*exists and is not empty.*",
                 ".*IterableDataset.*__len__.*", ".*TensorBoard.*tensorboardX.*", ".*`training_step` returned.*",
                 r".*isinstance\(treespec, LeafSpec\).*"):
    warnings.filterwarnings("ignore", message=_pattern)
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}/{key}" if prefix else key, sub, out)
    else:
        out[prefix] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: CUDA allocator peak on GPU, the process's peak RSS on CPU (an upper bound)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def train_run(variant, seed: int, data: TokenData, run_dir: Path, label: str) -> dict:
    """Train ``variant`` (a workbench.config.Variant) with ``seed``; return its run record."""
    train = variant.train
    folder = run_dir / variant.name / f"seed{seed}"
    ckpt_dir = folder / "checkpoints"
    tokens_per_step = train["batch_size"] * train["seq_len"]
    started = time.perf_counter()

    L.seed_everything(seed, workers=True, verbose=False)
    model = TransformerLM(variant.transformer_config(data.tokenizer.vocab_size), init_seed=seed)
    module = LMModule(model, train)
    flops_per_token = model.flops_per_token(train["seq_len"])
    module.flops_per_batch = flops_per_token * tokens_per_step  # read by ThroughputMonitor

    resume, resumed_step = resume_checkpoint(ckpt_dir)
    if resume:
        log.info("[%s] resuming from %s (step %d)", label, resume.name, resumed_step)
    logger = TensorBoardLogger(
        save_dir=str(run_dir), name=variant.name, version=f"seed{seed}", default_hp_metric=False,
        **({"purge_step": resumed_step} if resume else {}),
    )
    recorder = RunRecorder(folder / "metrics.json", val_batches(data.val, train["batch_size"], train["seq_len"], train["eval_batches"]),
                           train, label, tokens_per_step)
    interactive = sys.stderr.isatty()
    callbacks = run_callbacks(recorder, ckpt_dir, train["checkpoint_every"])
    if interactive:
        callbacks.append(RunProgressBar(label))
    trainer = build_trainer(train, train["steps"], logger, callbacks, progress_bar=interactive)
    stream = StepBatches(data.train, seed, train["batch_size"], train["seq_len"], start=lambda: trainer.global_step,
                         rank=lambda: trainer.global_rank, world_size=lambda: trainer.world_size)
    record = {"seed": seed, "status": "completed", "error": None, "resumed_from_step": resumed_step or None}
    try:
        trainer.fit(module, train_dataloaders=DataLoader(stream, batch_size=None), ckpt_path=str(resume) if resume else None)
        trainer.save_checkpoint(ckpt_dir / "last.ckpt", weights_only=False)
    except Diverged as exc:
        record.update(status="diverged", error=str(exc))
    except SIGTERMException:  # preempted or stopped: Lightning lets the step finish, then raises
        # One process saves the finished steps; with several, Lightning has already killed the other
        # ranks, so a collective save would hang: the run resumes from its last scheduled checkpoint.
        saved = trainer.world_size == 1
        if saved:
            trainer.save_checkpoint(ckpt_dir / "last.ckpt", weights_only=False)
        log.error("[%s] terminated (SIGTERM) after step %d, %s: re-run the same command to resume", label,
                  trainer.global_step, "checkpoint saved" if saved else "not saved (multi-process)")
        raise SystemExit(143) from None  # 128 + SIGTERM, as a killed process reports (Lightning exits 0)
    final_val = recorder.final_val_loss
    if final_val is None or (record["status"] == "completed" and recorder.curves["val"][-1]["step"] != trainer.global_step):
        context = trainer.strategy.precision_plugin.forward_context()
        final_val = evaluate(eval_forward(trainer, module), recorder.val_batches, module.device, context)
    steps = trainer.global_step
    if trainer.world_size != world_size(train):
        log.warning("[%s] %d processes trained, train.devices x num_nodes gave %d: a budget resolved into train.steps "
                    "is off by that factor (train_flops records what was trained)", label, trainer.world_size, world_size(train))
    if variant.eval_lengths:
        lengths, notes = {}, {}
        if record["status"] == "completed":
            lengths, notes = length_losses(
                module.model, data.val, variant.eval_lengths, batch_tokens=tokens_per_step,
                target_tokens=train["eval_batches"] * tokens_per_step, device=module.device, call=eval_forward(trainer, module),
                forward_context=trainer.strategy.precision_plugin.forward_context())
            log.info("[%s] val loss by length: %s", label,
                     ", ".join(f"{k}: {'n/a' if v is None else f'{v:.4f}'}" for k, v in lengths.items()))
        record.update(length_eval=lengths, length_eval_notes=notes)
    record.update(
        final_val_loss=final_val if record["status"] == "completed" else None,
        last_val_loss=final_val,
        final_train_loss=recorder.final_train_loss,
        val_bpb=final_val / math.log(2) / data.val_bytes_per_token if final_val is not None else None,
        tokens_per_sec=recorder.tokens_per_sec,
        steps=steps,
        train_tokens=steps * tokens_per_step * trainer.world_size,
        train_flops=steps * tokens_per_step * trainer.world_size * flops_per_token,
        wall_time_s=time.perf_counter() - started,
        peak_memory_mb=peak_memory_mb(module.device),
        precision=trainer.precision,
        metrics=str((folder / "metrics.json").relative_to(run_dir)),
        batch_fingerprint=batch_fingerprint(data.train, seed, train["steps"], train["batch_size"], train["seq_len"]),
    )
    if trainer.is_global_zero:
        hparams = _flatten("", variant.to_dict(), {"seed": seed})
        logger.log_hyperparams(hparams, metrics={"final/val_loss": final_val if final_val is not None else float("nan"),
                                                 "final/tokens_per_sec": record["tokens_per_sec"] or 0.0})
        logger.finalize("success")
    return record
