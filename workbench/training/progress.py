"""The terminal's progress bar: one per run, "run 2/4 layernorm seed1", steps, loss, tokens/s and the sweep's ETA.

Our train stream is infinite (steps are the budget, not epochs), so the stock bar shows neither a
total nor which run of the sweep it is, and its metrics are Lightning's (a cut version string,
``v_num``). This bar is sized in steps, reads the RunRecorder's latest logging step (no extra device
sync), draws on stderr beside the log, and moves log lines above itself while it is shown.
"""

from __future__ import annotations

import logging
import sys

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from tqdm import tqdm

from ..sweep_eta import SweepEta
from .callbacks import RunRecorder, format_rate


class _AboveTheBar(logging.Handler):
    """Writes records with ``tqdm.write``: the bar is cleared, the line printed, the bar redrawn."""

    def __init__(self, replaced: logging.Handler):
        super().__init__(replaced.level)
        self.setFormatter(replaced.formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


class RunProgressBar(TQDMProgressBar):
    """Description = the run's label, total = train.steps, position = global step, postfix = the loss
    and tokens/s of the last logging step and the sweep's runs done, elapsed and time left (``eta``)."""

    def __init__(self, label: str, recorder: RunRecorder, eta: SweepEta | None = None):
        super().__init__()
        self.label = label
        self.recorder = recorder
        self.eta = eta
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []

    def init_train_tqdm(self) -> Tqdm:
        # On stderr, beside the log lines: stdout may be a file or a pipe.
        return Tqdm(desc=self.label, position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stderr, smoothing=0, bar_format=self.BAR_FORMAT)

    def get_metrics(self, trainer, pl_module) -> dict:
        last = self.recorder.last
        if last is None:
            return {}
        shown = {"loss": f"{last.loss:.4f}"}
        if last.tokens_per_sec:
            shown["speed"] = format_rate(last.tokens_per_sec)
        if self.eta is not None:
            shown["sweep"] = self.eta.line(last.step).removeprefix("sweep ")
        return shown

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._swap_handlers()

    def on_train_epoch_start(self, trainer, *args) -> None:
        bar = self.train_progress_bar  # not Lightning's: it would show "Epoch 0" and an unknown total first
        bar.reset(total=trainer.max_steps)
        bar.initial = bar.n = trainer.global_step  # a resumed run starts where it left off
        bar.set_description(self.label, refresh=False)
        bar.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable:
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        self._restore_handlers()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_handlers()

    def _swap_handlers(self) -> None:
        """Root handlers that write to stderr print through tqdm while the bar is shown."""
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                above = _AboveTheBar(handler)
                root.removeHandler(handler)
                root.addHandler(above)
                self._swapped.append((handler, above))

    def _restore_handlers(self) -> None:
        root = logging.getLogger()
        for handler, above in self._swapped:
            root.removeHandler(above)
            root.addHandler(handler)
        self._swapped.clear()
