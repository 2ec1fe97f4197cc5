"""Callbacks of a training run: held-out evaluation on a fixed schedule and the run's metrics file."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from ..config.schema import TrainSettings
from ..fileio import read_json, write_json
from ..sweep_eta import SweepEta
from . import tensorboard as tb
from .module import Diverged, eval_forward, evaluate

log = logging.getLogger("workbench")


# Extra evaluations at these fractions of training: the loss-vs-compute curve is dense where variants'
# final losses fall, so a compute multiplier read off it is interpolated, not guessed between far points.
END_DENSE = (0.5, 0.625, 0.75, 0.875)


def eval_schedule(steps: int, every: int) -> frozenset[int]:
    """Steps with a validation loss: every ``every`` steps, the fractions in END_DENSE, and the last step."""
    dense = {max(1, round(steps * f)) for f in END_DENSE}
    return frozenset(set(range(every, steps + 1, every)) | dense | {steps})


def records_train_loss(step: int, log_every: int, checkpoint_every: int, eval_steps: frozenset[int]) -> bool:
    """Whether a run records its training loss at ``step``: logging, evaluation and checkpoint steps."""
    return step % log_every == 0 or step in eval_steps or step % checkpoint_every == 0


def curves_as_recorded(curves: dict, train: TrainSettings, upto: int) -> dict:
    """The points of ``curves`` at steps <= ``upto`` that a run under ``train`` records itself: how a WSD
    branch takes over its trunk's curves (the same trajectory up to ``upto``; the trunk evaluates at the
    branch's steps too, ``training.branch``), so its metrics.json is the one its own run would have written."""
    evals = eval_schedule(train.steps, train.eval_every)
    return {"train": [p for p in curves["train"]
                      if p["step"] <= upto and records_train_loss(p["step"], train.log_every, train.checkpoint_every, evals)],
            "val": [p for p in curves["val"] if p["step"] <= upto and p["step"] in evals]}


@dataclass
class StepStats:
    """The latest logging step, as the progress bar and the log lines show it."""

    step: int
    loss: float
    lr: float
    tokens_per_sec: float | None  # over the logging window that ended at ``step``; None before one ends


def format_rate(tokens_per_sec: float | None) -> str:
    """20100.0 -> '20.1k tok/s'; None -> ''."""
    if not tokens_per_sec:
        return ""
    return f"{tokens_per_sec / 1e6:.2f}M tok/s" if tokens_per_sec >= 1e6 else f"{tokens_per_sec / 1000:.1f}k tok/s"


class RunRecorder(L.Callback):
    """Evaluates on the fixed val batches on ``eval_schedule`` (absolute steps, so a resumed run
    evaluates where an uninterrupted one would), records train/val curves into ``metrics.json``,
    and times training steps for tokens/s.

    Every ``train.log_every`` steps it writes the TensorBoard scalars (``tensorboard.py``: train loss,
    learning rate, gradient norm, tokens/s and MFU over the window since the last logging step) at
    ``trainer.global_step``, the step axis of the validation loss too; with ``plain_lines`` (no
    terminal for a progress bar) it also logs one line with loss, lr, tokens/s and the sweep's progress
    (``eta``). At train start it writes the CUSTOM SCALARS layout into the run's own events, with the
    MFU chart only where the device's peak is known (``tensorboard.layout``).

    Its state (curves, timing, and for a WSD branch the run it branched from) travels in every checkpoint,
    so a resumed run continues from exactly the checkpoint's step: metrics.json is an output, rewritten
    from that state, never read back. ``also_evaluate``: more validation steps (a WSD trunk's: where the
    shorter horizons branching off it evaluate before their cool-downs).
    """

    STATE_KEY = "RunRecorder"  # its entry in a checkpoint's callback states (Lightning's default for the class)

    def __init__(self, metrics_path: Path, val_batches, train: TrainSettings | Mapping, label: str, tokens_per_step: int,
                 flops_per_token: int = 0, plain_lines: bool = False, clock=time.perf_counter,
                 also_evaluate: frozenset[int] = frozenset(), eta: SweepEta | None = None):
        self.clock = clock  # seconds, monotonic: injected by tests
        self.eta = eta
        self.path = Path(metrics_path)
        self.val_batches = val_batches
        train = TrainSettings.of(train)
        self.eval_steps = eval_schedule(train.steps, train.eval_every) | also_evaluate
        self.log_every = train.log_every
        self.checkpoint_every = train.checkpoint_every
        self.total_steps = train.steps
        self.label = label
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self.plain_lines = plain_lines
        self.last: StepStats | None = None
        self.peak_flops: float | None = None  # per device, set at train start where known (MFU)
        self.curves = {"train": [], "val": []}
        self.branched_from: dict | None = None  # a WSD branch: {"run_group": the trunk, "step": its decay start}
        self.train_time = 0.0
        self.timed_steps = 0
        self.earlier_wall_s = 0.0  # wall time of the sessions before this one (from the checkpoint)
        self._started = self.clock()
        self._t0 = 0.0
        self._session_steps = 0
        self._window_t0: float | None = None  # the logging window: from its first step's start
        self._window_steps = 0

    # -- checkpointed state ----------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        return self.STATE_KEY

    def state_dict(self) -> dict:
        return {"curves": self.curves, "train_time": self.train_time, "timed_steps": self.timed_steps,
                "wall_time_s": self.wall_time_s, "branched_from": self.branched_from}

    def load_state_dict(self, state: dict) -> None:
        self.curves = {k: list(state["curves"][k]) for k in ("train", "val")}
        self.train_time, self.timed_steps = float(state["train_time"]), int(state["timed_steps"])
        self.earlier_wall_s = float(state["wall_time_s"])
        self.branched_from = state.get("branched_from")  # absent from checkpoints written before branching

    @property
    def wall_time_s(self) -> float:
        return self.earlier_wall_s + self.clock() - self._started

    # -- lifecycle -------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        if self.flops_per_token:
            self.peak_flops = tb.peak_flops(pl_module.device, str(trainer.precision))
        if trainer.is_global_zero and trainer.logger is not None:
            tb.write_layout(trainer.logger.experiment, mfu=self.peak_flops is not None)
        if trainer.is_global_zero and self.path.exists():
            if read_json(self.path) is None:
                log.warning("[%s] %s was damaged: rewritten from the checkpoint of step %d", self.label, self.path,
                            trainer.global_step)
            write_json(self.path, self.curves)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = self.clock()
        if self._window_t0 is None:
            self._window_t0 = self._t0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._session_steps += 1
        self._window_steps += 1
        if self._session_steps > 2:  # skip warm-up (allocator, compile) steps in throughput
            self.train_time += self.clock() - self._t0
            self.timed_steps += 1
        step = trainer.global_step
        checkpoint_due = step % self.checkpoint_every == 0
        evaluate_now = step in self.eval_steps
        if records_train_loss(step, self.log_every, self.checkpoint_every, self.eval_steps):
            # The only host sync of a step, and only on logging/eval/checkpoint steps. This callback
            # runs before ModelCheckpoint, so non-finite weights never reach a checkpoint.
            loss = float(outputs["loss"])
            if not math.isfinite(loss):
                raise Diverged(f"training loss became {loss} by step {step}")
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            self.curves["train"].append({"step": step, "loss": loss, "lr": lr, "tokens": step * self.tokens_per_step})
            if step % self.log_every == 0:
                self._log_step(trainer, pl_module, step, loss, lr)
        if evaluate_now or checkpoint_due:  # evaluation and checkpoint writes stay out of the next window
            self._window_t0, self._window_steps = None, 0
        if evaluate_now:
            self.evaluate(trainer, pl_module)

    def _log_step(self, trainer, pl_module, step: int, loss: float, lr: float) -> None:
        """TensorBoard scalars at ``step`` and, without a progress bar, one plain line. Called right after
        the loss's host sync, so the window's wall time covers its steps' device work."""
        now = self.clock()
        rate = None
        if self._window_t0 is not None and self._window_steps and now > self._window_t0:
            rate = self._window_steps * self.tokens_per_step * trainer.world_size / (now - self._window_t0)
        self._window_t0, self._window_steps = None, 0
        self.last = StepStats(step, loss, lr, rate)
        scalars = {tb.TRAIN_LOSS: loss, **tb.lr_scalars(trainer.optimizers[0])}
        if pl_module.grad_norm is not None:
            scalars[tb.GRAD_NORM] = float(pl_module.grad_norm)
        if rate is not None:
            scalars[tb.TOKENS_PER_SEC] = rate
            if self.peak_flops:
                scalars[tb.MFU] = rate * self.flops_per_token / (self.peak_flops * trainer.world_size)
        if trainer.logger is not None:
            trainer.logger.log_metrics(scalars, step=step)
        if self.plain_lines and trainer.is_global_zero:
            log.info("[%s] step %d/%d  loss %.4f  lr %.2e  %s%s", self.label, step, self.total_steps, loss, lr,
                     format_rate(rate), f"  {self.eta.line(step)}" if self.eta is not None else "")

    def evaluate(self, trainer, pl_module) -> float:
        step = trainer.global_step
        if self.curves["val"] and self.curves["val"][-1]["step"] == step:
            return self.curves["val"][-1]["loss"]
        context = trainer.strategy.precision_plugin.forward_context()
        loss = evaluate(eval_forward(trainer, pl_module), self.val_batches, pl_module.device, context)
        self.curves["val"].append({"step": step, "loss": loss, "tokens": step * self.tokens_per_step})
        if trainer.logger is not None:
            trainer.logger.log_metrics({tb.VAL_LOSS: loss}, step=step)
        if trainer.is_global_zero:
            write_json(self.path, self.curves)
            log.info("[%s] step %d/%d  val loss %.4f (%d batches)  %s", self.label, step, self.total_steps, loss,
                     len(self.val_batches), self._speed())
        return loss

    def _speed(self) -> str:
        return format_rate(self.tokens_per_sec)

    @property
    def tokens_per_sec(self) -> float | None:
        return self.timed_steps * self.tokens_per_step / self.train_time if self.train_time > 0 else None

    @property
    def final_val_loss(self) -> float | None:
        return self.curves["val"][-1]["loss"] if self.curves["val"] else None

    @property
    def final_train_loss(self) -> float | None:
        return self.curves["train"][-1]["loss"] if self.curves["train"] else None
