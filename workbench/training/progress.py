"""Lightning's tqdm progress bar, labelled with the run ("run 2/4 layernorm seed1") and sized in steps.

Our train stream is infinite (steps are the budget, not epochs), so the stock bar shows neither a
total nor which run of the sweep it is.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar


class RunProgressBar(TQDMProgressBar):
    """One bar per run: description = the run's label, total = train.steps, position = global step."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        bar = self.train_progress_bar
        bar.set_description(self.label)
        bar.total = trainer.max_steps
        bar.initial = trainer.global_step  # a resumed run starts where it left off
        bar.n = trainer.global_step
        bar.refresh()
