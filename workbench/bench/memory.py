"""Peak tensor memory of a piece of code, on CPU as well as CUDA.

CUDA has allocator statistics. The CPU allocator has none, so ``PeakTensorMemory`` counts, through
a dispatch mode, the bytes of every tensor storage created inside the block and still alive, and
records the maximum. It sees only tensors made by ATen operators inside the block (not the inputs
made before it), which is what comparing two kernels on the same inputs needs.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakTensorMemory(TorchDispatchMode):
    """``with PeakTensorMemory() as m: ...`` then ``m.peak_bytes``: the most bytes of storages
    created inside the block that were alive at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self.current_bytes = 0
        self.peak_bytes = 0

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self._live:  # views share their base's storage: count it once
            return
        self._live[key] = size
        self.current_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.current_bytes -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.device.type != "meta":
                self._track(value)
        return out


def peak_memory_bytes(fn, device: torch.device) -> int:
    """Peak bytes allocated while ``fn()`` runs: the CUDA allocator's peak above what was already
    allocated, or on CPU the tensors ``fn`` creates (``PeakTensorMemory``)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with PeakTensorMemory() as tracker:
        fn()
    return tracker.peak_bytes
