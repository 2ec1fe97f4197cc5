"""A transformer block: attention and FFN sublayers, wired with their norms by the configured placement.

The placement (components.placement) is one function for the whole block, ``place(x, attn, ffn,
norms)``; it declares the norms it uses, and the block builds each as its own attribute::

    pre  (GPT-2, LLaMA):  x = x + attn(attn_norm(x));   x = x + ffn(ffn_norm(x))
    post (Vaswani 2017):  x = attn_norm(x + attn(x));   x = ffn_norm(x + ffn(x))
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import torch
from torch import nn

from .config import TransformerConfig
from .positions import Positions
from .registry import registry
from .self_attention import CausalSelfAttention


def build_norm(cfg: TransformerConfig, dim: int | None = None) -> nn.Module:
    """The configured norm over ``dim`` features (default ``cfg.dim``); ``cfg.norm_eps``, when set,
    is passed as the norm's ``eps`` option, so a norm without one is an error, not a silent drop."""
    name, options = cfg.component("norm")
    if cfg.norm_eps is not None:
        options = {**options, "eps": cfg.norm_eps}
    return registry.build("norm", {"name": name, **options}, dim=cfg.dim if dim is None else dim, bias=cfg.bias)


class Block(nn.Module):
    """One decoder layer: attention and FFN, wired with their norms by the norm placement."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        name, options = cfg.component("norm_placement")
        entry = registry.get("norm_placement", name)
        self.place = functools.partial(entry.factory, **options) if options else entry.factory
        self.norm_names = entry.traits["norms"]
        taken = {"attn", "ffn", "place", "norms", "norm_names"} & set(self.norm_names)
        if taken:
            raise ValueError(f"norm_placement '{name}' declares a norm named {sorted(taken)[0]!r}, which the block uses itself")
        for norm_name in self.norm_names:
            setattr(self, norm_name, build_norm(cfg))
        self.attn = CausalSelfAttention(cfg)
        self.ffn = registry.build("ffn", cfg.ffn, dim=cfg.dim, hidden_dim=cfg.ffn_hidden_dim, bias=cfg.bias)
        # What the placement sees as `norms`: the norms it declared, by name (the modules themselves).
        self.norms = SimpleNamespace(**{n: getattr(self, n) for n in self.norm_names})

    def forward(self, x: torch.Tensor, positions: Positions, offset: int = 0, cache=None) -> torch.Tensor:
        """``cache``: this layer's ``components.generation.LayerCache`` during incremental decoding, else None."""
        return self.place(x, lambda h: self.attn(h, positions, offset, cache=cache), self.ffn, self.norms)

