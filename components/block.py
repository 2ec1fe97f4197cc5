"""A transformer block: attention and FFN sublayers, each wired by the configured norm placement.

::

    pre  (GPT-2, LLaMA):  x = x + attn(norm1(x));   x = x + ffn(norm2(x))
    post (Vaswani 2017):  x = norm1(x + attn(x));   x = norm2(x + ffn(x))
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TransformerConfig
from .positions import Positions
from .registry import registry


def build_norm(cfg: TransformerConfig) -> nn.Module:
    options = {} if cfg.norm_eps is None else {"eps": cfg.norm_eps}
    return registry.build("norm", cfg.norm, dim=cfg.dim, bias=cfg.bias, **options)


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


class Block(nn.Module):
    """One decoder layer: attention then FFN, each placed around its own norm."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.place = registry.get("norm_placement", cfg.norm_placement).factory
        self.attn_norm = build_norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.ffn_norm = build_norm(cfg)
        self.ffn = registry.build("ffn", cfg.ffn, dim=cfg.dim, hidden_dim=cfg.hidden_dim, bias=cfg.bias)
        # Built-in FFNs name their output projection `down`; a third-party FFN may not have one.
        down = getattr(self.ffn, "down", None)
        if isinstance(down, nn.Linear):
            down.is_residual_projection = True

    def forward(self, x: torch.Tensor, positions: Positions, offset: int = 0) -> torch.Tensor:
        x = self.place(x, lambda h: self.attn(h, positions, offset), self.attn_norm)
        return self.place(x, self.ffn, self.ffn_norm)
