"""Placements that scale the residual branches or the stream by depth, with parameters of their own.

::

    layerscale (CaiT)    x = x + g_a * attn(attn_norm(x));  x = x + g_f * ffn(ffn_norm(x))   g: (dim,), init eps(depth)
    rezero               x = x + a * attn(x);               x = x + a * ffn(x)               a: scalar per block, init 0
    deepnorm (DeepNet)   x = attn_norm(A * x + attn(x));    x = ffn_norm(A * x + ffn(x))     A = (2N)^(1/4)

Their parameters (``attn_scale``, ``ffn_scale``, ``alpha``) are stored as the block's own
(``blocks.N.attn_scale``) and set by their ``reset_parameters``, which ``TransformerLM.init_weights``
calls. DeepNorm also declares the init of the residual projections it relies on (``residual_init``), so
it is refused under completep; the others multiply each branch by ``branch_multiplier`` (1/m_L there).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .contract import Positive
from .placement import Placement, Sublayer, scale_branch
from .registry import registry


def cait_init(n_layers: int) -> float:
    """CaiT's LayerScale init eps by depth (Touvron et al., 2021): 0.1 up to 18 layers, 1e-5 up to 24, 1e-6 deeper."""
    return 0.1 if n_layers <= 18 else 1e-5 if n_layers <= 24 else 1e-6


def deepnorm_alpha(n_layers: int) -> float:
    """DeepNet's residual up-weighting for a decoder-only model of N layers: (2N)^(1/4) (Wang et al., 2022)."""
    return (2 * n_layers) ** 0.25


def deepnorm_beta(n_layers: int) -> float:
    """DeepNet's init gain for a decoder-only model of N layers: (8N)^(-1/4) (Wang et al., 2022)."""
    return (8 * n_layers) ** -0.25


def _layerscale_reference(p, x, attn, ffn):
    x, b = x.double(), p.branch_multiplier
    h = x + b * p.attn_scale.double() * attn(p.attn_norm(x))
    return h + b * p.ffn_scale.double() * ffn(p.ffn_norm(h))


def _rezero_reference(p, x, attn, ffn):
    x, b = x.double(), p.branch_multiplier
    a = p.alpha.double()
    h = x + b * a * attn(x)
    return h + b * a * ffn(h)


def _deepnorm_reference(p, x, attn, ffn):
    x = x.double()
    a = (2 * p.n_layers) ** 0.25 if p.alpha_option is None else p.alpha_option
    h = p.attn_norm(a * x + attn(x))
    return p.ffn_norm(a * h + ffn(h))


@registry.register("norm_placement", "layerscale", final_norm=True, residual_init=None,
                   weights={"attn_scale": "input", "ffn_scale": "input"}, reference=_layerscale_reference)
class LayerScale(Placement):
    """Pre-norm with a learned per-channel scale on each branch, x + diag(g) f(norm(x)) (CaiT, Touvron et al., 2021).

    g starts at a small ``init_value`` so each block begins near the identity; None takes CaiT's choice
    by depth (``cait_init``: 0.1 up to 18 layers, 1e-5 up to 24, 1e-6 deeper).
    """

    def __init__(self, dim: int, n_layers: int, make_norm: Callable[[], nn.Module], init_value: Positive | None = None,
                 branch_multiplier: float = 1.0):
        super().__init__(branch_multiplier)
        self.init_value = cait_init(n_layers) if init_value is None else init_value
        self.attn_norm, self.ffn_norm = make_norm(), make_norm()
        self.attn_scale = nn.Parameter(torch.empty(dim))
        self.ffn_scale = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.attn_scale.fill_(self.init_value)
        self.ffn_scale.fill_(self.init_value)

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        b = self.branch_multiplier
        x = x + scale_branch(self.attn_scale * attn(self.attn_norm(x)), b)
        return x + scale_branch(self.ffn_scale * ffn(self.ffn_norm(x)), b)

    def extra_repr(self) -> str:
        return f"init_value={self.init_value:g}"


@registry.register("norm_placement", "rezero", final_norm=False, residual_init=None, weights={"alpha": "input"},
                   reference=_rezero_reference)
class ReZero(Placement):
    """ReZero x + a * f(x): no norm at all, one scalar a per block shared by both sublayers, initialised to 0 (Bachlechner et al., 2020).

    Every block starts as the identity. As in the paper, nothing is normalised, so the model gets no
    final norm either (the configured ``norm`` is unused).
    """

    def __init__(self, branch_multiplier: float = 1.0):
        super().__init__(branch_multiplier)
        self.alpha = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.alpha.zero_()

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        b = self.branch_multiplier
        x = x + scale_branch(self.alpha * attn(x), b)
        return x + scale_branch(self.alpha * ffn(x), b)


@registry.register("norm_placement", "deepnorm", final_norm=False, residual_init=deepnorm_beta, weights={},
                   reference=_deepnorm_reference)
class DeepNorm(nn.Module):
    """DeepNorm: post-norm with the stream up-weighted, norm(alpha * x + f(x)), alpha = (2N)^(1/4) (DeepNet, Wang et al., 2022).

    The decoder-only constants for N layers: alpha = (2N)^(1/4) here (``alpha`` overrides it), and
    ``residual_init``: the residual projections (attn.out, the FFN's output) drawn with beta =
    (8N)^(-1/4) times the init std. DeepNet also scales the value projection and the FFN's input by
    beta; here those keep the init scheme's std (v is a slice of the fused qkv matrix).
    """

    def __init__(self, n_layers: int, make_norm: Callable[[], nn.Module], alpha: Positive | None = None):
        super().__init__()
        self.n_layers, self.alpha_option = n_layers, alpha
        self.alpha = deepnorm_alpha(n_layers) if alpha is None else alpha
        self.attn_norm, self.ffn_norm = make_norm(), make_norm()

    def forward(self, x: torch.Tensor, attn: Sublayer, ffn: Sublayer) -> torch.Tensor:
        x = self.attn_norm(self.alpha * x + attn(x))
        return self.ffn_norm(self.alpha * x + ffn(x))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, beta={deepnorm_beta(self.n_layers):g}"

