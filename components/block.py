"""A transformer block: attention and FFN sublayers, wired with their norms by the configured placement.

The placement (components.placement) is a module for the whole block, ``place(x, attn, ffn)``; it
builds its own norms (and any parameters of its own)::

    pre  (GPT-2, LLaMA):  x = x + attn(attn_norm(x));   x = x + ffn(ffn_norm(x))
    post (Vaswani 2017):  x = attn_norm(x + attn(x));   x = ffn_norm(x + ffn(x))

The placement is the block's child ``place``, but a TransformerLM's state dict stores its parameters
as the block's own (``flatten_placements``): ``blocks.N.attn_norm.weight``, not
``blocks.N.place.attn_norm.weight``, where they were before placements were modules, so old
checkpoints load and weight interop keeps its names. ``block.attn_norm`` reads the same way.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .config import TransformerConfig
from .context import BuildContext
from .positions import Positions
from .registry import registry
from .self_attention import CausalSelfAttention

PLACE = "place"
OWN = ("attn", "ffn", PLACE)  # the block's own children; a placement's names must differ


def flatten_placements(model: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    """TransformerLM's state_dict post-hook: ``blocks.N.place.X`` -> ``blocks.N.X``, in place, order kept.

    On the model, not on each Block: under FSDP each Block's wrapper checks its own keys after the
    Block's hooks ran, so they must still be the parameter names there."""
    nested = re.compile(rf"^({re.escape(prefix)}blocks\.\d+\.){PLACE}\.")
    keys = list(state_dict)
    first = next((i for i, k in enumerate(keys) if nested.match(k)), len(keys))
    for key, value in [(k, state_dict.pop(k)) for k in keys[first:]]:  # re-inserted in order, renamed
        state_dict[nested.sub(r"\1", key)] = value


def nest_placements(model: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """TransformerLM's load_state_dict pre-hook: ``blocks.N.X`` -> ``blocks.N.place.X`` where X is not the block's own."""
    flat = re.compile(rf"^({re.escape(prefix)}blocks\.\d+\.)(?!(?:{'|'.join(OWN)})\.)")
    for key in [k for k in state_dict if flat.match(k)]:
        state_dict[flat.sub(rf"\1{PLACE}.", key)] = state_dict.pop(key)


class Block(nn.Module):
    """One decoder layer: attention and FFN, wired with their norms by the norm placement."""

    def __init__(self, cfg: TransformerConfig, layer_idx: int = 0):
        super().__init__()
        context = BuildContext.from_config(cfg, layer_idx)
        self.place = registry.build("norm_placement", cfg.norm_placement, context)
        names = set(self.place._modules) | set(self.place._parameters) | set(self.place._buffers)
        taken = sorted(names & set(OWN))
        if taken:
            raise ValueError(f"norm_placement '{cfg.component('norm_placement')[0]}' holds {taken[0]!r}, "
                             f"a name the block uses itself ({', '.join(OWN)})")
        self.attn = CausalSelfAttention(cfg, context)
        self.ffn = registry.build("ffn", cfg.ffn, context)

    def __getattr__(self, name: str):
        """The placement's parameters and submodules read as the block's own (``block.attn_norm``), as stored."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            place = self._modules.get(PLACE)
            if place is None or not any(name in d for d in (place._modules, place._parameters, place._buffers)):
                raise
            return getattr(place, name)

    def forward(self, x: torch.Tensor, positions: Positions, offset: int = 0, cache=None) -> torch.Tensor:
        """``cache``: this layer's ``components.generation.LayerCache`` during incremental decoding, else None."""
        return self.place(x, lambda h: self.attn(h, positions, offset, cache=cache), self.ffn)
