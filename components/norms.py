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


class _RMSNormFunction(torch.autograd.Function):
    """RMSNorm with a hand-written backward: saves x and the per-row 1/rms only, and needs about
    8 passes over x for forward + backward instead of the ~14 of autograd's chain of small ops."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        # 1/rms from one fused reduction (no x**2 temporary).
        inv_rms = torch.rsqrt(torch.linalg.vector_norm(x, 2, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps))
        ctx.save_for_backward(x, weight, inv_rms)
        return (x * inv_rms).mul_(weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight, inv_rms = ctx.saved_tensors
        x_hat = x * inv_rms  # (..., dim)
        grad_weight = (grad * x_hat).flatten(0, -2).sum(0) if ctx.needs_input_grad[1] else None
        # d/dx of x * r * w, r = 1/rms(x):  r * (g w - x_hat * mean(g w x_hat))
        gw = grad * weight
        dot = (gw * x_hat).sum(-1, keepdim=True)  # (..., 1)
        grad_x = gw.addcmul_(x_hat, dot, value=-1.0 / x.shape[-1]).mul_(inv_rms)
        return grad_x, grad_weight, None


@registry.register("norm", "rmsnorm")
class RMSNorm(nn.Module):
    """RMSNorm: x / sqrt(mean(x^2) + eps) * weight, no centring, no bias (Zhang & Sennrich, 2019)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == _compute_dtype(x) == self.weight.dtype:  # fp32/fp64 (also the residual stream under autocast)
            return _RMSNormFunction.apply(x, self.weight, self.eps)
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
