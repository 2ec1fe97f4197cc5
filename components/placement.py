"""How a block wires its two sublayers, their norms and the residual stream: one module per placement,
not branches inside the block.

A placement is a module built with what it declares of ``(dim, n_layers, layer_idx, make_norm,
branch_multiplier)`` (components.context.BuildContext) plus its options, and called once per block as
``forward(x, attn, ffn) -> x``: ``attn`` and ``ffn`` are callables on (B, T, dim) (the attention with
its positions and KV cache bound). It builds its norms with ``make_norm()`` and may own parameters
(components.placement_scaled). The block stores the placement's parameters and submodules as its own,
``blocks.N.<name>`` (``blocks.N.attn_norm.weight``). ``final_norm`` declares whether the model needs
a norm before the LM head. ``branch_multiplier`` (CompleteP's 1/m_L, else 1.0) multiplies each residual
branch where it joins the stream; a placement without it is refused under completep.

::

    pre       (GPT-2, LLaMA)   x = x + attn(attn_norm(x));            x = x + ffn(ffn_norm(x))
    post      (Vaswani 2017)   x = attn_norm(x + attn(x));            x = ffn_norm(x + ffn(x))
    parallel  (GPT-J, PaLM)    x = x + attn(attn_norm(x)) + ffn(attn_norm(x))
    reordered (OLMo 2)         x = x + attn_norm(attn(x));            x = x + ffn_norm(ffn(x))
    sandwich  (Gemma 2)        x = x + attn_post_norm(attn(attn_norm(x)));  same for ffn
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .registry import registry

Sublayer = Callable[[torch.Tensor], torch.Tensor]

# Float64 references (the contract's ``reference`` trait): each wiring written out as a formula of
# (x, attn, ffn) and the placement's own norms, called as reference(place, x, attn, ffn).


# b is the branch multiplier (CompleteP's 1/m_L; 1.0 otherwise).


def _pre_reference(p, x, attn, ffn):
    b = p.branch_multiplier
    h = x + b * attn(p.attn_norm(x))
    return h + b * ffn(p.ffn_norm(h))


def _post_reference(p, x, attn, ffn):
    b = p.branch_multiplier
    h = p.attn_norm(x + b * attn(x))
    return p.ffn_norm(h + b * ffn(h))


def _parallel_reference(p, x, attn, ffn):
    b = p.branch_multiplier
    return x + b * attn(p.attn_norm(x)) + b * ffn(p.attn_norm(x))


def _reordered_reference(p, x, attn, ffn):
    b = p.branch_multiplier
    h = x + b * p.attn_norm(attn(x))
    return h + b * p.ffn_norm(ffn(h))


def _sandwich_reference(p, x, attn, ffn):
    b = p.branch_multiplier
    h = x + b * p.attn_post_norm(attn(p.attn_norm(x)))
    return h + b * p.ffn_post_norm(ffn(p.ffn_norm(h)))


def scale_branch(y: torch.Tensor, multiplier: float) -> torch.Tensor:
    """A residual branch's output times the branch multiplier; untouched at 1.0, so standard stays bit-identical."""
    return y if multiplier == 1.0 else y * multiplier


class Placement(nn.Module):
    """Base of the built-in placements: keeps ``branch_multiplier`` (components.context.BuildContext)."""

    def __init__(self, branch_multiplier: float = 1.0):
        super().__init__()
        self.branch_multiplier = branch_multiplier


@registry.register("norm_placement", "pre", final_norm=True, residual_init=None, weights={}, reference=_pre_reference)
class PreNorm(Placement):
    """Pre-norm x + f(norm(x)): the residual stream is never normalised, so the model adds a final norm (GPT-2, LLaMA)."""

    def __init__(self, make_norm: Callable[[], nn.Module], branch_multiplier: float = 1.0):
        super().__init__(branch_multiplier)
        self.attn_norm, self.ffn_norm = make_norm(), make_norm()

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        b = self.branch_multiplier
        x = x + scale_branch(attn(self.attn_norm(x)), b)
        return x + scale_branch(ffn(self.ffn_norm(x)), b)


@registry.register("norm_placement", "post", final_norm=False, residual_init=None, weights={}, reference=_post_reference)
class PostNorm(Placement):
    """Post-norm norm(x + f(x)): the original Transformer's wiring; the block ends in a norm (Vaswani et al., 2017)."""

    def __init__(self, make_norm: Callable[[], nn.Module], branch_multiplier: float = 1.0):
        super().__init__(branch_multiplier)
        self.attn_norm, self.ffn_norm = make_norm(), make_norm()

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        b = self.branch_multiplier
        x = self.attn_norm(x + scale_branch(attn(x), b))
        return self.ffn_norm(x + scale_branch(ffn(x), b))


@registry.register("norm_placement", "parallel", final_norm=True, residual_init=None, weights={}, reference=_parallel_reference)
class ParallelBlock(Placement):
    """Parallel block x + attn(norm(x)) + ffn(norm(x)), one shared norm (GPT-J, Wang & Komatsuzaki 2021; PaLM, Chowdhery et al. 2022).

    Both sublayers read the same normalised input, so their matmuls can run as one; PaLM reports
    ~15% faster training at large scale and a small quality loss at 8B that vanishes at 62B.
    """

    def __init__(self, make_norm: Callable[[], nn.Module], branch_multiplier: float = 1.0):
        super().__init__(branch_multiplier)
        self.attn_norm = make_norm()

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        h, b = self.attn_norm(x), self.branch_multiplier
        return x + scale_branch(attn(h), b) + scale_branch(ffn(h), b)


@registry.register("norm_placement", "reordered", final_norm=True, residual_init=None, weights={}, reference=_reordered_reference)
class ReorderedNorm(Placement):
    """Reordered norm x + norm(f(x)): each sublayer's output is normalised before the residual add (OLMo 2, OLMo et al. 2024).

    The stream itself is never normalised, so the final norm before the LM head is kept. OLMo 2 adopts
    it (with QK-norm) for training stability.
    """

    def __init__(self, make_norm: Callable[[], nn.Module], branch_multiplier: float = 1.0):
        super().__init__(branch_multiplier)
        self.attn_norm, self.ffn_norm = make_norm(), make_norm()

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        b = self.branch_multiplier
        x = x + scale_branch(self.attn_norm(attn(x)), b)
        return x + scale_branch(self.ffn_norm(ffn(x)), b)


@registry.register("norm_placement", "sandwich", final_norm=True, residual_init=None, weights={}, reference=_sandwich_reference)
class SandwichNorm(Placement):
    """Sandwich norm x + post_norm(f(pre_norm(x))): a norm on both sides of each sublayer (Gemma 2, Gemma Team 2024).

    Four norms per block (Gemma 2's input, post-attention, pre- and post-feedforward norms) and the
    final norm.
    """

    def __init__(self, make_norm: Callable[[], nn.Module], branch_multiplier: float = 1.0):
        super().__init__(branch_multiplier)
        self.attn_norm, self.attn_post_norm = make_norm(), make_norm()
        self.ffn_norm, self.ffn_post_norm = make_norm(), make_norm()

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        b = self.branch_multiplier
        x = x + scale_branch(self.attn_post_norm(attn(self.attn_norm(x))), b)
        return x + scale_branch(self.ffn_post_norm(ffn(self.ffn_norm(x))), b)
