"""The training batch stream as a Lightning-friendly iterable that starts at the trainer's step.

The batch at global step k is ``train_batch(tokens, k, seed, ...)``: a pure function, so a resumed
run continues with exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from typing import Callable

from torch.utils.data import IterableDataset

from ..data import train_batch


class StepBatches(IterableDataset):
    """Infinite stream of (x, y) batches from step ``start()`` onwards, this rank's slice."""

    def __init__(self, tokens, seed: int, batch_size: int, seq_len: int, start: Callable[[], int],
                 rank: Callable[[], int] = lambda: 0, world_size: Callable[[], int] = lambda: 1):
        self.tokens, self.seed, self.batch_size, self.seq_len = tokens, seed, batch_size, seq_len
        self.start, self.rank, self.world_size = start, rank, world_size

    def __iter__(self):
        step, rank, world = self.start(), self.rank(), self.world_size()
        while True:
            yield train_batch(self.tokens, step, self.seed, self.batch_size, self.seq_len, rank, world)
            step += 1
