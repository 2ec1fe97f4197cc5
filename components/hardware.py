"""What the CPU computes natively: decides where reduced precision is a speed-up and where it is not."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX-BF16).

    oneDNN also "supports" bf16 on plain AVX-512 by emulation, which is 4-5x slower than fp32
    (measured: 58 vs 270 GFLOP/s on a 2-core AVX-512 Xeon), so that is not enough. Cached: the
    answer cannot change while the process runs.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
