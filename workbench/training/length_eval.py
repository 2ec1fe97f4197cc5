"""Val loss at other lengths than the training one: does a position scheme extrapolate?

Every length scores the same val tokens: one contiguous span at the start of the val split, cut
into windows of that length. So the losses differ only in how much context each token had, never
in which text was scored. (The loss at 1x therefore differs slightly from ``final_val_loss``, which
averages windows spread over the whole split.) Batches hold about the training batch's token count
whatever the length, so memory grows only with attention's T^2.

A position scheme with a ``max_len`` (learned positions) cannot encode longer sequences: those
lengths are recorded as None with a note, never run.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from components import TransformerLM

from ..data import windows

log = logging.getLogger("workbench")


def eval_span(n_val_tokens: int, longest: int, target_tokens: int) -> int:
    """Tokens scored at every length: about ``target_tokens``, a multiple of the longest length,
    and within the split (each window needs one token more than its length)."""
    if n_val_tokens < longest + 1:
        raise ValueError(f"the val split has {n_val_tokens} tokens, fewer than {longest + 1} for one window of {longest}")
    usable = min(max(target_tokens, longest), n_val_tokens - 1)
    return usable // longest * longest


def length_batches(tokens: np.ndarray, length: int, span: int, batch_tokens: int):
    """(x, y) batches of ``length``-token windows tiling ``tokens[:span]``; about ``batch_tokens`` each."""
    offsets = np.arange(span // length, dtype=np.int64) * length
    per_batch = max(1, batch_tokens // length)
    for i in range(0, len(offsets), per_batch):
        yield windows(tokens, offsets[i:i + per_batch], length)


@torch.no_grad()
def length_losses(model: TransformerLM, val_tokens: np.ndarray, lengths: list[int], *, batch_tokens: int,
                  target_tokens: int, device: torch.device, forward_context,
                  call: Callable[..., torch.Tensor] | None = None) -> tuple[dict[str, float | None], dict[str, str]]:
    """``({"128": loss, "512": None}, {"512": why})``: mean val loss (nats/token) at each length.

    ``call`` computes the loss when it is not ``model`` itself (under FSDP: the root wrapper that
    gathers the sharded weights)."""
    call = model if call is None else call
    losses: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    if not lengths:
        return losses, notes
    limit = getattr(model.positions, "max_len", None)
    span = eval_span(len(val_tokens), max(lengths), target_tokens)
    was_training = model.training
    model.eval()
    try:
        with forward_context:
            for length in lengths:
                key = str(length)
                if limit is not None and length > limit:
                    losses[key] = None
                    notes[key] = f"not applicable ({model.config.positions} positions cover {limit} tokens)"
                    continue
                total, count = 0.0, 0  # token-weighted: the last batch may hold fewer windows
                for x, y in length_batches(val_tokens, length, span, batch_tokens):
                    total += call(x.to(device), targets=y.to(device)).item() * y.numel()
                    count += y.numel()
                losses[key] = total / count
                log.debug("length %d: val loss %.4f over %d tokens", length, losses[key], count)
    finally:
        model.train(was_training)
    return losses, notes
