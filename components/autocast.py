"""The dtype a matmul runs in, for code that does autocast's casting itself: a custom autograd
function's backward runs outside autocast, so it must compute in the dtype its forward chose."""

from __future__ import annotations

import torch


def matmul_dtype(x: torch.Tensor) -> torch.dtype:
    """The autocast dtype where autocast is on for ``x``'s device, else ``x``'s own dtype."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype
