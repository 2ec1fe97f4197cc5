"""Normalisation layers: LayerNorm (Ba et al., 2016) and RMSNorm (Zhang & Sennrich, 2019).

Both compute in at least fp32 and cast back, as the LLaMA reference does, so bf16 training
normalises with full precision while float64 test inputs stay float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .contract import Positive
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
        if ctx is not None:
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


def rmsnorm_reference(module: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """Float64 x / sqrt(mean(x^2) + eps) * weight from the module's parameters."""
    x = x.double()
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + module.eps) * module.weight.double()


@registry.register("norm", "rmsnorm", weights={"*": "input"}, reference=rmsnorm_reference)
class RMSNorm(nn.Module):
    """RMSNorm: x / sqrt(mean(x^2) + eps) * weight, no centring, no bias (Zhang & Sennrich, 2019)."""

    def __init__(self, dim: int, eps: Positive = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Unit gain (TransformerLM.init_weights calls this)."""
        self.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == _compute_dtype(x) == self.weight.dtype:  # fp32/fp64 (also the residual stream under autocast)
            if torch.compiler.is_compiling():
                # The plain formula: inductor fuses it (and its derived backward) with its neighbours,
                # and the compiled graph stays cacheable (an autograd.Function would make it not).
                return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
            if torch.is_grad_enabled():
                return _RMSNormFunction.apply(x, self.weight, self.eps)
            # Evaluation and decoding: the same formula without autograd.Function's per-call overhead.
            return _RMSNormFunction.forward(None, x, self.weight, self.eps)
        h = x.to(_compute_dtype(x))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        # Cast back before scaling, as LLaMA and transformers do (matters in bf16).
        return self.weight * h.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def layernorm_reference(module: LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """Float64 (x - mean) / sqrt(biased var + eps) * weight + bias from the module's parameters."""
    x = x.double()
    centred = x - x.mean(-1, keepdim=True)
    y = centred / torch.sqrt((centred * centred).mean(-1, keepdim=True) + module.eps) * module.weight.double()
    return y if module.bias is None else y + module.bias.double()


@registry.register("norm", "layernorm", weights={"*": "input"}, reference=layernorm_reference)
class LayerNorm(nn.Module):
    """LayerNorm: centre, scale to unit variance, then affine weight (and optional bias) (Ba et al., 2016)."""

    def __init__(self, dim: int, eps: Positive = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Unit gain, zero bias (TransformerLM.init_weights calls this)."""
        self.weight.fill_(1.0)
        if self.bias is not None:
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype(x)
        weight = self.weight.to(dtype)
        bias = self.bias.to(dtype) if self.bias is not None else None
        return F.layer_norm(x.to(dtype), weight.shape, weight, bias, self.eps).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, bias={self.bias is not None}"


def dyt_reference(module: DyT, x: torch.Tensor) -> torch.Tensor:
    """Float64 DyT from the module's parameters: weight * tanh(alpha * x) + bias."""
    x = x.double()
    y = module.weight.double() * torch.tanh(module.alpha.double() * x)
    return y if module.bias is None else y + module.bias.double()


@registry.register("norm", "dyt", weights={"*": "input"}, reference=dyt_reference)
class DyT(nn.Module):
    """Dynamic Tanh: weight * tanh(alpha * x) + bias, a drop-in for the norm with no statistics
    (Zhu et al., 2025, "Transformers without Normalization").

    alpha is one learnable scalar; there is no eps, since nothing is divided. The paper initialises
    alpha at 0.5 for most models and tunes it for large LLMs (``alpha_init``).
    """

    def __init__(self, dim: int, alpha_init: Positive = 0.5, bias: bool = True):
        super().__init__()
        self.alpha_init = alpha_init
        self.alpha = nn.Parameter(torch.empty(1))
        self.weight = nn.Parameter(torch.empty(dim))
        self.bias = nn.Parameter(torch.empty(dim)) if bias else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.alpha.fill_(self.alpha_init)
        self.weight.fill_(1.0)
        if self.bias is not None:
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _compute_dtype(x)
        y = self.weight.to(dtype) * torch.tanh(self.alpha.to(dtype) * x.to(dtype))
        if self.bias is not None:
            y = y + self.bias.to(dtype)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, alpha_init={self.alpha_init}, bias={self.bias is not None}"
