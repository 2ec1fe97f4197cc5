"""Incremental decoding: the key/value cache and next-token sampling (``TransformerLM.generate``).

The cache lives outside the model (the model never holds decoding state): ``generate`` builds one
``KVCache`` per call and passes each block's ``LayerCache`` to its attention. Each layer keeps the keys
and values of every position decoded so far, after positions and QK-norm were applied, in buffers
allocated once for the whole generation (no concatenation per step). Every position is kept, also with
a sliding window: the kernels mask keys outside the window, and absolute key positions stay those of
the buffer (ALiBi's distances, the window's edge).
"""

from __future__ import annotations

import torch


class LayerCache:
    """One attention layer's keys and values, (B, H_kv, capacity, head_dim) each, filled up to ``length``."""

    def __init__(self, batch: int, n_kv_heads: int, head_dim: int, capacity: int, dtype: torch.dtype,
                 device: torch.device):
        self.k = torch.empty(batch, n_kv_heads, capacity, head_dim, dtype=dtype, device=device)
        self.v = torch.empty_like(self.k)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (B, H_kv, T, D) and return every cached key and value, (B, H_kv, length + T, D)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} positions; cannot add {k.shape[2]} after {start}")
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """Every layer's ``LayerCache``; ``length`` is the number of positions decoded so far, i.e. the
    absolute position (``offset``) of the next token."""

    def __init__(self, n_layers: int, batch: int, n_kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype, device: torch.device):
        self.layers = [LayerCache(batch, n_kv_heads, head_dim, capacity, dtype, device) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ValueError naming the argument for a temperature, top_k or top_p that cannot sample."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """(B, V) logits -> logits / temperature with the tokens outside top-k and the nucleus set to -inf.

    Applied in transformers' order: temperature, then top-k (the k largest; ties at the k-th value
    kept), then top-p (Holtzman et al., 2020: the most probable tokens until their mass reaches p; a
    token is dropped when the tokens more probable than it already hold p, so the top one always stays).
    """
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of the tokens ranked above each one
        drop = torch.zeros_like(before, dtype=torch.bool).scatter_(-1, order, before >= top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) last-position logits -> (B,) next token ids. temperature 0: argmax (greedy, no randomness);
    else a draw from softmax(filter_logits(...)) with ``generator`` (None: torch's global RNG)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
