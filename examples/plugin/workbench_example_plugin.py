"""Example third-party components, registered through the ``workbench.components`` entry point.

Each registration declares what the workbench relies on (docs/components.md): the FFN its width rule
and its residual projection, the placement whether the model needs a final norm, each its weights'
roles (what μP/CompleteP scale: docs/parametrization.md), and each a float64 reference the workbench's
tests check it against.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from components import registry


def scalenorm_reference(norm: ScaleNorm, x: torch.Tensor) -> torch.Tensor:
    """Float64 g * x / max(||x||, eps) from the module's gain."""
    x = x.double()
    length = torch.sqrt((x * x).sum(-1, keepdim=True)).clamp_min(norm.eps)
    return norm.g.double() * x / length


@registry.register("norm", "example_scalenorm", weights={"g": "input"}, reference=scalenorm_reference)
class ScaleNorm(nn.Module):
    """ScaleNorm: g * x / ||x||, one learned scalar gain g, initialised to sqrt(dim) (Nguyen & Salazar, 2019)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.g = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # TransformerLM.init_weights calls this: the model draws only linear layers and tables itself.
        self.g.fill_(math.sqrt(self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.promote_types(x.dtype, torch.float32))  # normalise in at least fp32
        h = h / torch.linalg.vector_norm(h, dim=-1, keepdim=True).clamp_min(self.eps)
        return (self.g * h).to(x.dtype)


def bilinear_reference(ffn: BilinearGLU, x: torch.Tensor) -> torch.Tensor:
    """Float64 w_out((w_gate x) * (w_up x)) from the module's weights."""
    x = x.double()
    gate = x @ ffn.w_gate.weight.double().T
    up = x @ ffn.w_up.weight.double().T
    return (gate * up) @ ffn.w_out.weight.double().T


@registry.register("ffn", "example_bilinear", width="glu", residual=("w_out",), weights={"w_*": "hidden"},
                   reference=bilinear_reference)
class BilinearGLU(nn.Module):
    """Bilinear GLU, a gated unit without activation: w_out((w_gate x) * (w_up x)) (Shazeer, 2020)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        # No biases (as LLaMA's FFN): the signature leaves out `bias`, so the model does not pass it.
        # Three matrices: width="glu" makes the model size hidden_dim so they hold as many
        # parameters as a 4*dim MLP's two.
        self.w_gate = nn.Linear(dim, hidden_dim, bias=False)
        self.w_up = nn.Linear(dim, hidden_dim, bias=False)
        self.w_out = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_out(self.w_gate(x) * self.w_up(x))


def normformer_reference(place: NormFormer, x, attn, ffn):
    b = place.branch_multiplier
    h = x + b * place.attn_post_norm(attn(place.attn_norm(x)))
    return h + b * ffn(place.ffn_norm(h))


@registry.register("norm_placement", "example_normformer", final_norm=True, weights={}, reference=normformer_reference)
class NormFormer(nn.Module):
    """Pre-norm plus a norm on the attention output, NormFormer's post-attention norm (Shleifer et al., 2021)."""

    def __init__(self, make_norm, branch_multiplier: float = 1.0):
        super().__init__()
        # Each norm is the model's configured kind; the block stores it as blocks.N.<attribute>.
        self.attn_norm, self.attn_post_norm, self.ffn_norm = make_norm(), make_norm(), make_norm()
        # CompleteP's 1/m_L (1.0 otherwise): each branch is scaled where it joins the stream.
        self.branch_multiplier = branch_multiplier

    def forward(self, x, attn, ffn):
        b = self.branch_multiplier
        x = x + b * self.attn_post_norm(attn(self.attn_norm(x)))
        return x + b * ffn(self.ffn_norm(x))
