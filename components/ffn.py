"""Feed-forward sublayers: the 4*dim MLP (ReLU, GELU) and gated linear units (Shazeer, 2020).

Every FFN shares one signature ``(dim, hidden_dim, bias)``. GLUs have three matrices instead of
two, so their default width is 2/3 of the MLP's, rounded up to ``multiple_of`` (LLaMA's rule),
which keeps ablations parameter-matched. Each entry declares that rule (``width``), its output
projection (``residual``) and a float64 ``reference`` at registration (components.contract).

A hidden width off the GEMM multiple (682 at dim 256: the 2/3 rule with ``multiple_of`` 1) is
computed padded to it, with the same bits and parameters (components.padded_linear).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .padded_linear import narrow, padded_width, widen
from .registry import registry


def mlp_hidden_dim(dim: int, mult: int = 4) -> int:
    """The classic MLP width, mult * dim."""
    return mult * dim


def glu_hidden_dim(dim: int, mult: int = 4, multiple_of: int = 64, ffn_dim_multiplier: float | None = None) -> int:
    """LLaMA's GLU width: int(2 * mult * dim / 3), optionally scaled, rounded up to ``multiple_of``."""
    h = int(2 * mult * dim / 3)
    if ffn_dim_multiplier is not None:
        h = int(ffn_dim_multiplier * h)
    return multiple_of * -(-h // multiple_of)


_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "relu2": lambda x: F.relu(x).square(),
}


class MLP(nn.Module):
    """Two-layer MLP: down(act(up(x))) (Vaswani et al., 2017)."""

    def __init__(self, dim: int, hidden_dim: int, activation: str = "gelu", bias: bool = True):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}' (available: {', '.join(_ACTIVATIONS)})")
        self.activation = activation
        self.act = _ACTIVATIONS[activation]
        self.up = nn.Linear(dim, hidden_dim, bias=bias)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = padded_width(self.up.out_features, self.up, self.down)
        return narrow(self.act(widen(x, self.up, width)), self.down)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class GLU(nn.Module):
    """Gated linear unit: down(act(gate(x)) * up(x)) (Shazeer, 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, dim: int, hidden_dim: int, activation: str = "silu", bias: bool = False):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}' (available: {', '.join(_ACTIVATIONS)})")
        self.activation = activation
        self.act = _ACTIVATIONS[activation]
        self.gate = nn.Linear(dim, hidden_dim, bias=bias)
        self.up = nn.Linear(dim, hidden_dim, bias=bias)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = padded_width(self.up.out_features, self.gate, self.up, self.down)
        return narrow(self.act(widen(x, self.gate, width)) * widen(x, self.up, width), self.down)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


# Float64 references (the contract's ``reference`` trait): the activations as written in their papers,
# independent of the torch functions the modules call.
_REFERENCE_ACTIVATIONS = {
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "relu2": lambda x: torch.where(x > 0, x, torch.zeros_like(x)) ** 2,
}


def _linear64(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    y = x.double() @ layer.weight.double().T
    return y if layer.bias is None else y + layer.bias.double()


def mlp_reference(ffn: MLP, x: torch.Tensor) -> torch.Tensor:
    """Float64 down(act(up x)) from the module's weights."""
    return _linear64(_REFERENCE_ACTIVATIONS[ffn.activation](_linear64(x, ffn.up)), ffn.down)


def glu_reference(ffn: GLU, x: torch.Tensor) -> torch.Tensor:
    """Float64 down(act(gate x) * up x) from the module's weights."""
    return _linear64(_REFERENCE_ACTIVATIONS[ffn.activation](_linear64(x, ffn.gate)) * _linear64(x, ffn.up), ffn.down)


# Every matrix of an MLP or GLU grows with width on both sides (μP hidden weights); biases are vectors.
FFN_WEIGHTS = {"*.weight": "hidden", "*.bias": "input"}


@registry.register("ffn", "relu", width="mlp", residual=("down",), weights=FFN_WEIGHTS, reference=mlp_reference)
class ReluMLP(MLP):
    """ReLU MLP, 4*dim wide: the original Transformer's FFN."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "relu", bias)


@registry.register("ffn", "gelu", width="mlp", residual=("down",), weights=FFN_WEIGHTS, reference=mlp_reference)
class GeluMLP(MLP):
    """GELU MLP (exact erf GELU), 4*dim wide: BERT's FFN."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "gelu", bias)


@registry.register("ffn", "gelu_tanh", width="mlp", residual=("down",), weights=FFN_WEIGHTS, reference=mlp_reference)
class GeluTanhMLP(MLP):
    """GELU MLP with the tanh approximation, 4*dim wide: GPT-2's FFN ('gelu_new')."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "gelu_tanh", bias)


@registry.register("ffn", "relu2", width="mlp", residual=("down",), weights=FFN_WEIGHTS, reference=mlp_reference)
class Relu2MLP(MLP):
    """Squared-ReLU MLP, 4*dim wide (So et al., 2021, Primer)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "relu2", bias)


@registry.register("ffn", "swiglu", width="glu", residual=("down",), weights=FFN_WEIGHTS, reference=glu_reference)
class SwiGLU(GLU):
    """SwiGLU: SiLU-gated linear unit, LLaMA's FFN (Shazeer, 2020)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
        super().__init__(dim, hidden_dim, "silu", bias)


@registry.register("ffn", "geglu", width="glu", residual=("down",), weights=FFN_WEIGHTS, reference=glu_reference)
class GeGLU(GLU):
    """GeGLU: GELU-gated linear unit (Shazeer, 2020)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
        super().__init__(dim, hidden_dim, "gelu", bias)


@registry.register("ffn", "reglu", width="glu", residual=("down",), weights=FFN_WEIGHTS, reference=glu_reference)
class ReGLU(GLU):
    """ReGLU: ReLU-gated linear unit (Shazeer, 2020)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
        super().__init__(dim, hidden_dim, "relu", bias)
