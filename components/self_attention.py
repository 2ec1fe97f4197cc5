"""Causal self-attention: the q/k/v projections, positions, and a pluggable kernel (components.attention)."""

from __future__ import annotations

import torch
from torch import nn

from .config import TransformerConfig
from .positions import Positions
from .registry import registry


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with grouped key/value heads and a pluggable kernel."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_size
        # One fused projection for q, k and v: one GEMM instead of three.
        self.qkv = nn.Linear(cfg.dim, (self.n_heads + 2 * self.n_kv_heads) * self.head_dim, bias=cfg.bias)
        self.out = nn.Linear(self.n_heads * self.head_dim, cfg.dim, bias=cfg.bias)
        self.out.is_residual_projection = True
        self.kernel = registry.build("attention", cfg.attention)

    def forward(self, x: torch.Tensor, positions: Positions, offset: int = 0) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, D = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = self.qkv(x).split([H * D, Hkv * D, Hkv * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        q, k = positions.rotate(q, k, offset)
        y = self.kernel(q, k, v)  # (B, H, T, D)
        return self.out(y.transpose(1, 2).reshape(B, T, H * D))
