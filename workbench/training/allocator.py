"""glibc malloc settings for CPU training: keep freed activation memory in the process.

By default glibc serves each large tensor with its own mmap and returns freed memory to the OS, so
every training step page-faults its activations in again (482k minor faults in a 100-step tiny run).
Raising the mmap and trim thresholds (what PyTorch's CPU tuning guide does with jemalloc/tcmalloc or
MALLOC_* variables) reuses that memory: 176k faults and +5% tokens/s, measured in docs/main-job.md.
The cost: the process keeps its peak heap instead of shrinking after a step.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters, <malloc.h>
_SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 256 << 20))


def keep_freed_memory() -> bool:
    """Apply the settings to this process's glibc malloc; False (nothing changed) on other C libraries."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl's mallopt is a no-op stub
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in _SETTINGS)
