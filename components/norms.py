"""Normalisation layers: LayerNorm (Ba et al., 2016) and RMSNorm (Zhang & Sennrich, 2019).

Both compute in at least fp32 and cast back, as the LLaMA reference does, so bf16 training
normalises with full precision while float64 test inputs stay float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import registry


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


@registry.register("norm", "rmsnorm")
class RMSNorm(nn.Module):
    """RMSNorm: x / sqrt(mean(x^2) + eps) * weight, no centring, no bias (Zhang & Sennrich, 2019)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(_compute_dtype(x))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        # Cast back before scaling, as LLaMA and transformers do (matters in bf16).
        return self.weight * h.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


@registry.register("norm", "layernorm")
class LayerNorm(nn.Module):
    """LayerNorm: centre, scale to unit variance, then affine weight (and optional bias) (Ba et al., 2016)."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype(x)
        weight = self.weight.to(dtype)
        bias = self.bias.to(dtype) if self.bias is not None else None
        return F.layer_norm(x.to(dtype), weight.shape, weight, bias, self.eps).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, bias={self.bias is not None}"
