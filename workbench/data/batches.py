"""Batches as pure functions of (seed, step): resumed runs and rival variants see identical data.

Training windows start at random offsets drawn from a torch.Generator seeded by hashing (seed, step),
so there is no loader state to checkpoint. With world_size > 1 the global batch is drawn once and
each rank takes its slice, so the data does not depend on how many devices share it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor

from .errors import DataError


def step_seed(seed: int, step: int) -> int:
    """A 63-bit generator seed for (seed, step); hashing keeps nearby steps' streams unrelated."""
    digest = hashlib.sha256(f"workbench-batch:{int(seed)}:{int(step)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def batch_offsets(n_tokens: int, step: int, seed: int, count: int, seq_len: int) -> Tensor:
    """`count` window starts in [0, n_tokens - seq_len - 1]: each window needs seq_len + 1 tokens."""
    if n_tokens < seq_len + 1:
        raise DataError("train.seq_len", f"{seq_len} needs at least {seq_len + 1} tokens, the split has {n_tokens}")
    generator = torch.Generator().manual_seed(step_seed(seed, step))
    return torch.randint(0, n_tokens - seq_len, (count,), generator=generator)


def windows(tokens: np.ndarray, offsets: np.ndarray | Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
    """(x, y) int64 of shape (len(offsets), seq_len); y is x shifted left by one token."""
    index = np.asarray(offsets, dtype=np.int64)[:, None] + np.arange(seq_len + 1)  # (B, T+1)
    chunk = torch.from_numpy(np.asarray(tokens[index], dtype=np.int64))  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]


def train_batch(tokens: np.ndarray, step: int, seed: int, batch_size: int, seq_len: int,
                rank: int = 0, world_size: int = 1) -> tuple[Tensor, Tensor]:
    """This rank's (x, y) of the global batch of `batch_size * world_size` random windows at `step`."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    offsets = batch_offsets(len(tokens), step, seed, batch_size * world_size, seq_len)
    return windows(tokens, offsets[rank * batch_size:(rank + 1) * batch_size], seq_len)


def val_offsets(n_tokens: int, batch_size: int, seq_len: int, max_batches: int) -> np.ndarray:
    """Starts of non-overlapping windows spread evenly over the split: a whole number of batches if possible."""
    available = (n_tokens - 1) // seq_len
    if available < 1:
        raise DataError("train.seq_len", f"{seq_len} needs at least {seq_len + 1} tokens, the val split has {n_tokens}")
    if batch_size < 1 or max_batches < 1:
        raise ValueError(f"batch_size ({batch_size}) and max_batches ({max_batches}) must be >= 1")
    count = min(max_batches, available // batch_size) * batch_size or available  # too few: one short batch
    slots = np.arange(count, dtype=np.int64) * available // count  # distinct and evenly spaced
    return slots * seq_len


def val_batches(tokens: np.ndarray, batch_size: int, seq_len: int, max_batches: int) -> list[tuple[Tensor, Tensor]]:
    """The fixed validation set: the same windows for every run, variant and seed."""
    offsets = val_offsets(len(tokens), batch_size, seq_len, max_batches)
    return [windows(tokens, offsets[i:i + batch_size], seq_len) for i in range(0, len(offsets), batch_size)]


def batch_fingerprint(tokens: np.ndarray, seed: int, steps: int, batch_size: int, seq_len: int) -> str:
    """sha256 over the token content and the window offsets of steps 0..steps-1 (global batches).

    Equal fingerprints mean two runs trained on exactly the same windows; cheap for 10k steps.
    """
    digest = hashlib.sha256(f"{len(tokens)}:{np.asarray(tokens).dtype}:{batch_size}:{seq_len}:".encode())
    digest.update(np.ascontiguousarray(tokens).data)
    for step in range(steps):
        digest.update(batch_offsets(len(tokens), step, seed, batch_size, seq_len).numpy().tobytes())
    return digest.hexdigest()
