"""Causal self-attention: the q/k/v projections, optional QK-norm, positions, and a pluggable kernel
(components.attention)."""

from __future__ import annotations

import torch
from torch import nn

from .config import TransformerConfig
from .context import BuildContext
from .generation import LayerCache
from .parametrization import multipliers
from .positions import Positions
from .registry import registry


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with grouped key/value heads and a pluggable kernel.

    ``cfg.qk_norm`` normalises queries and keys before RoPE with the model's norm kind, as ``q_norm``
    and ``k_norm``: "head" over each head's head_dim (Qwen3), "proj" over the whole q projection
    (H * head_dim) and the whole k projection (H_kv * head_dim) before the head split (OLMo 2).
    ``cfg.window`` (sliding window) and the positions' ALiBi slopes reach the kernel as its ``window``
    and ``slopes`` keywords, passed only when set, so a kernel with the plain (q, k, v) signature
    still serves full causal attention. Under μP the queries are multiplied by
    ``Multipliers.q_scale`` after the positions, so the scores scale as 1/head_dim across widths.

    With a ``cache`` (incremental decoding, ``TransformerLM.generate``), x holds the tokens at absolute
    positions ``offset``.. only; their keys and values, after QK-norm and positions, are appended to the
    cache and the queries attend to every cached key (the kernels place query i at position S - T + i).
    """

    def __init__(self, cfg: TransformerConfig, context: BuildContext | None = None):
        super().__init__()
        context = context or BuildContext.from_config(cfg)
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.window, self.qk_norm = cfg.window, cfg.qk_norm
        self.q_scale = multipliers(cfg).q_scale
        # One fused projection for q, k and v: one GEMM instead of three.
        self.qkv = nn.Linear(cfg.dim, (self.n_heads + 2 * self.n_kv_heads) * self.head_dim, bias=cfg.bias)
        self.out = nn.Linear(self.n_heads * self.head_dim, cfg.dim, bias=cfg.bias)
        if cfg.qk_norm != "none":
            q_dim, k_dim = (self.head_dim, self.head_dim) if cfg.qk_norm == "head" else (
                self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim)
            self.q_norm, self.k_norm = context.make_norm(q_dim), context.make_norm(k_dim)
        self.kernel = registry.build("attention", cfg.attention, context)

    def forward(self, x: torch.Tensor, positions: Positions, offset: int = 0,
                cache: LayerCache | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, D = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = self.qkv(x).split([H * D, Hkv * D, Hkv * D], dim=-1)
        if self.qk_norm == "proj":
            q, k = self.q_norm(q), self.k_norm(k)  # (B, T, H * D), (B, T, Hkv * D)
        q = q.view(B, T, H, D)
        k = k.view(B, T, Hkv, D)
        if self.qk_norm == "head":
            q, k = self.q_norm(q), self.k_norm(k)  # over D, per head
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, H, T, D), (B, Hkv, T, D)
        v = v.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        q, k = positions.rotate(q, k, offset)
        if self.q_scale != 1.0:  # μP: scores scaled by sqrt(base_head_dim) / head_dim, the kernel's 1/sqrt(head_dim) included
            q = q * self.q_scale
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, offset + T, D)
        options = {}
        if self.window is not None:
            options["window"] = self.window
        slopes = positions.attention_slopes(q.device, torch.promote_types(q.dtype, torch.float32))
        if slopes is not None:
            options["slopes"] = slopes
        y = self.kernel(q, k, v, **options)  # (B, H, T, D)
        return self.out(y.transpose(1, 2).reshape(B, T, H * D))

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}, window={self.window}"
