"""Keep glibc's malloc from returning every large tensor's memory to the OS between steps.

PyTorch's CPU allocator is plain malloc. glibc serves blocks above its mmap threshold with a fresh
``mmap`` and unmaps them on free, so every activation of every step page-faults its memory in
again (measured: ~9,500 page faults per training step of the dim-256 benchmark model). Raising
the mmap and trim thresholds lets freed blocks be reused from the heap instead, as a caching
allocator (jemalloc, tcmalloc, CUDA's) would.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3

MMAP_THRESHOLD = 256 << 20  # blocks below this come from the heap and are reused after free
TRIM_THRESHOLD = 512 << 20  # keep up to this much free memory at the top of the heap
TOP_PAD = 64 << 20  # grow the heap in steps of at least this

_tuned: dict | None = None


def tune_cpu_allocator() -> dict | None:
    """Set the thresholds once per process (glibc only); returns what was set, or None where not."""
    global _tuned
    if _tuned is not None:
        return _tuned
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs without mallopt
        return None
    settings = {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD, "top_pad": TOP_PAD}
    ok = all(mallopt(param, value) == 1 for param, value in
             ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    if not ok:
        log.debug("mallopt refused the allocator settings")
        return None
    _tuned = settings
    log.debug("glibc malloc: %s", settings)
    return settings
