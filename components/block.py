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
from .self_attention import CausalSelfAttention


def build_norm(cfg: TransformerConfig) -> nn.Module:
    options = {} if cfg.norm_eps is None else {"eps": cfg.norm_eps}
    return registry.build("norm", cfg.norm, dim=cfg.dim, bias=cfg.bias, **options)


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
