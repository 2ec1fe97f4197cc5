"""Resolve ``train.precision: auto`` to what this machine runs fast."""

from __future__ import annotations

import torch

from components.hardware import cpu_has_fast_bf16


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """'auto' -> 'bf16-mixed' on CUDA with bf16 or a CPU with fast bf16, else '32'; others unchanged."""
    if precision != "auto":
        return precision
    use_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if use_cuda:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32"
