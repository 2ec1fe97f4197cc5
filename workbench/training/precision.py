"""Resolve ``train.precision: auto`` to what this machine runs fast."""

from __future__ import annotations

import torch


def cpu_has_fast_bf16() -> bool:
    """oneDNN reports bf16 support on CPUs with AVX-512 / AMX, where bf16 autocast trains faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """'auto' -> 'bf16-mixed' on CUDA with bf16 or a CPU with fast bf16, else '32'; others unchanged."""
    if precision != "auto":
        return precision
    use_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if use_cuda:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32"
