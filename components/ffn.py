"""Feed-forward sublayers: the 4*dim MLP (ReLU, GELU) and gated linear units (Shazeer, 2020).

Every FFN shares one signature ``(dim, hidden_dim, bias)``. GLUs have three matrices instead of
two, so their default width is 2/3 of the MLP's, rounded up to ``multiple_of`` (LLaMA's rule),
which keeps ablations parameter-matched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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

    is_glu = False

    def __init__(self, dim: int, hidden_dim: int, activation: str = "gelu", bias: bool = True):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}' (available: {', '.join(_ACTIVATIONS)})")
        self.activation = activation
        self.act = _ACTIVATIONS[activation]
        self.up = nn.Linear(dim, hidden_dim, bias=bias)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class GLU(nn.Module):
    """Gated linear unit: down(act(gate(x)) * up(x)) (Shazeer, 2020, "GLU Variants Improve Transformer")."""

    is_glu = True

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
        return self.down(self.act(self.gate(x)) * self.up(x))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


@registry.register("ffn", "relu")
class ReluMLP(MLP):
    """ReLU MLP, 4*dim wide: the original Transformer's FFN."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "relu", bias)


@registry.register("ffn", "gelu")
class GeluMLP(MLP):
    """GELU MLP (exact erf GELU), 4*dim wide: BERT's FFN."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "gelu", bias)


@registry.register("ffn", "gelu_tanh")
class GeluTanhMLP(MLP):
    """GELU MLP with the tanh approximation, 4*dim wide: GPT-2's FFN ('gelu_new')."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "gelu_tanh", bias)


@registry.register("ffn", "relu2")
class Relu2MLP(MLP):
    """Squared-ReLU MLP, 4*dim wide (So et al., 2021, Primer)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__(dim, hidden_dim, "relu2", bias)


@registry.register("ffn", "swiglu")
class SwiGLU(GLU):
    """SwiGLU: SiLU-gated linear unit, LLaMA's FFN (Shazeer, 2020)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
        super().__init__(dim, hidden_dim, "silu", bias)


@registry.register("ffn", "geglu")
class GeGLU(GLU):
    """GeGLU: GELU-gated linear unit (Shazeer, 2020)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
        super().__init__(dim, hidden_dim, "gelu", bias)


@registry.register("ffn", "reglu")
class ReGLU(GLU):
    """ReGLU: ReLU-gated linear unit (Shazeer, 2020)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
        super().__init__(dim, hidden_dim, "relu", bias)
