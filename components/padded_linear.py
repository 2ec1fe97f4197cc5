"""An FFN's hidden width computed at a GEMM-friendly width, with the same bits.

CPU GEMMs whose output width is not a multiple of 8 run at ~60% of the speed of their neighbours
(4096 x 256 times 256 x N, fp32, AMD EPYC: 107 GFLOP/s at N = 682, 177 at 688; docs/performance.md),
and an FFN's hidden width often is one (LLaMA's 2/3 rule at ``multiple_of`` 1: 682 at dim 256).
So the hidden activations are computed ``P = gemm_width(N)`` wide, the extra features zero:

    widen(x, up)     (..., P) = x @ [W; 0]^T + [b; 0]      the GEMM writes P columns
    narrow(h, down)  (..., dim) = h[..., :N] @ W^T + b     its backward writes dh P wide, the pad zero

Every GEMM that writes the hidden width writes P columns, and every GEMM that sums over it sums over
the N real features (a strided view), never over the zeros: a GEMM summing over N + padding rounds
differently from one summing over N. Each backward is the one autograd derives for ``nn.Linear``
(the same GEMMs on the same operands), so outputs and gradients are bit-identical to the declared
layers' (tests/test_ffn.py). Under autocast both directions compute in the autocast dtype, as
``nn.Linear`` does, and return gradients in each input's own dtype. Under torch.compile the padding
is written as plain ops for the compiler (``narrow`` says why).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module

from .autocast import matmul_dtype

GEMM_MULTIPLE = 8


def gemm_width(width: int) -> int:
    """The width a hidden layer of ``width`` features is computed at: the next multiple of ``GEMM_MULTIPLE``."""
    return width + -width % GEMM_MULTIPLE


def padded_width(width: int, *layers: nn.Module) -> int:
    """``gemm_width(width)``, or ``width`` itself where a layer must run its own call: one that is not
    a bare ``nn.Linear`` (an adapter put in its place), or that a module hook or a global module hook
    (``FlopCounterMode`` tracks modules by one) would see called."""
    if width % GEMM_MULTIPLE == 0 or _global_hooks():
        return width
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    bare = all(type(m) is nn.Linear and not any(getattr(m, h) for h in hooks) for m in layers)
    return gemm_width(width) if bare else width


def _global_hooks() -> bool:
    return bool(torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks
                or torch_module._global_backward_hooks or torch_module._global_backward_pre_hooks)


def _cast(dtype: torch.dtype, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [None if t is None else t.to(dtype) for t in tensors]


def _parameter_grads(ctx, g: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The weight's and the bias's gradients of ``x2 @ w.T + b`` for the output gradient ``g`` (rows,
    out), each in its parameter's dtype, as autograd derives them for ``nn.Linear``."""
    _, w_dtype, b_dtype = ctx.dtypes
    grad_w = g.t().mm(x2).to(w_dtype) if ctx.needs_input_grad[1] else None
    grad_b = g.sum(0).to(b_dtype) if ctx.needs_input_grad[2] else None
    return grad_w, grad_b


class _Widen(torch.autograd.Function):
    """(..., in) -> (..., width): ``layer``'s output with zero features appended."""

    @staticmethod
    def forward(ctx, x, weight, bias, width):
        x2, w, b = _cast(matmul_dtype(x), x.reshape(-1, x.shape[-1]), weight, bias)
        pad = (0, 0, 0, width - w.shape[0])
        y = x2.mm(F.pad(w, pad).t()) if b is None else torch.addmm(F.pad(b, pad[2:]), x2, F.pad(w, pad).t())
        ctx.save_for_backward(x2, w)
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return y.view(*x.shape[:-1], width)

    @staticmethod
    def backward(ctx, grad):
        x2, w = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])[:, : w.shape[0]]  # the real features only
        grad_x = g.mm(w).view(*grad.shape[:-1], w.shape[1]).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        return grad_x, *_parameter_grads(ctx, g, x2), None


class _Narrow(torch.autograd.Function):
    """(..., width) -> (..., out): ``layer`` applied to the first ``in_features`` features only."""

    @staticmethod
    def forward(ctx, h, weight, bias):
        width = h.shape[-1]
        h2, w, b = _cast(matmul_dtype(h), h.reshape(-1, width)[:, : weight.shape[1]], weight, bias)
        y = h2.mm(w.t()) if b is None else torch.addmm(b, h2, w.t())
        ctx.save_for_backward(h2, w)
        ctx.dtypes, ctx.width = (h.dtype, weight.dtype, None if bias is None else bias.dtype), width
        return y.view(*h.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad):
        h2, w = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        grad_h = None
        if ctx.needs_input_grad[0]:  # written P wide: the padding's columns of w are zero
            grad_h = g.mm(F.pad(w, (0, ctx.width - w.shape[1]))).view(*grad.shape[:-1], ctx.width).to(ctx.dtypes[0])
        return grad_h, *_parameter_grads(ctx, g, h2)


def widen(x: torch.Tensor, layer: nn.Linear, width: int) -> torch.Tensor:
    """``layer(x)`` computed ``width`` features wide (``padded_width``), the extra ones zero."""
    if width == layer.out_features:
        return layer(x)
    if torch.compiler.is_compiling():  # see narrow
        pad = (0, 0, 0, width - layer.out_features)
        return F.linear(x, F.pad(layer.weight, pad), None if layer.bias is None else F.pad(layer.bias, pad[2:]))
    return _Widen.apply(x, layer.weight, layer.bias, width)


def narrow(h: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer`` applied to the first ``layer.in_features`` features of a widened ``h``."""
    if h.shape[-1] == layer.in_features:
        return layer(h)
    if torch.compiler.is_compiling():
        # The padding as plain ops: autograd derives the backward and the graph stays cacheable (an
        # autograd.Function keeps AOTAutograd from caching it). Its GEMMs sum over the zeros too, so
        # the bits may differ from eager's in the last place, as compiled code's do anyway.
        return F.linear(h, F.pad(layer.weight, (0, h.shape[-1] - layer.in_features)), layer.bias)
    return _Narrow.apply(h, layer.weight, layer.bias)
