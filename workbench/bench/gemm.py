"""The GEMM peak of this machine, measured: the denominator of every MFU figure the bench prints."""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from .flops import matmul_flops
from .timing import interleaved, median, spread

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sync(device: torch.device) -> None:
    """Wait for queued kernels, so wall time measures them (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def square_gemm(device: torch.device, dtype: str, n: int):
    """A call of one (n, n) @ (n, n) product in ``dtype`` ('fp32', 'bf16', 'fp16'): matmul_flops(n, n, n) FLOPs."""
    a = torch.randn(n, n, device=device).to(DTYPES[dtype])
    b = torch.randn(n, n, device=device).to(DTYPES[dtype])
    return lambda: (torch.mm(a, b), sync(device))


def gemm_peak(device: torch.device, dtypes: list[str], sizes: list[int], reps: int) -> dict:
    """Peak FLOP/s of square (n, n) @ (n, n) products, per dtype: the best call over ``reps``
    interleaved rounds and every size. A neighbour's load can only slow a call down, so the fastest
    one is the machine's capability (and MFU against it errs on the low side).

    Returns {dtype: {"flops": peak FLOP/s, "size": n of the peak, "median_flops": that size's median
    FLOP/s, "spread": its relative IQR}}.
    """
    cases = {(name, n): square_gemm(device, name, n) for name in dtypes for n in sizes}
    flops = {(name, n): matmul_flops(n, n, n) for name in dtypes for n in sizes}
    times = interleaved(cases, reps=reps, warmup=1)
    result = {}
    for name in dtypes:
        best = max(sizes, key=lambda n: flops[name, n] / min(times[name, n]))
        t = times[name, best]
        result[name] = {"flops": flops[name, best] / min(t), "size": best,
                        "median_flops": flops[name, best] / median(t), "spread": spread(t)}
    return result


def best_of(*measurements: dict) -> dict:
    """Per dtype, the ``gemm_peak`` measurement with the highest peak (the bench measures before
    and after its step section, so one busy moment cannot lower the denominator of every MFU)."""
    return {name: max((m[name] for m in measurements), key=lambda r: r["flops"]) for name in measurements[0]}


def linear_gemm_seconds(shapes: list[tuple[int, int]], rows: int, device: torch.device, dtype: torch.dtype,
                        reps: int) -> float:
    """Seconds for the forward and both backward GEMMs of Linear layers ``(in, out)`` applied to
    ``rows`` rows, run alone at their real shapes: the time a training step spends in its matmuls
    if nothing else cost anything (the GEMM-bound ceiling of its MFU). Repeated shapes run once."""
    counts = Counter(shapes)
    cases = {}
    for d_in, d_out in counts:
        x = torch.randn(rows, d_in, device=device, dtype=dtype)
        w = torch.randn(d_out, d_in, device=device, dtype=dtype)
        g = torch.randn(rows, d_out, device=device, dtype=dtype)

        def three(x=x, w=w, g=g):
            F.linear(x, w)  # forward
            g @ w  # grad of the input
            g.t() @ x  # grad of the weight
            sync(device)

        cases[(d_in, d_out)] = three
    times = interleaved(cases, reps=reps, warmup=1)
    return sum(counts[shape] * median(t) for shape, t in times.items())


# A reduced precision whose matmuls run this many times slower than fp32 has no vector path on this
# machine (bf16 on a CPU without AVX-512 is ~100x slower; AVX-512 emulation is ~5x, still measured).
UNUSABLE_SLOWDOWN = 8.0


def unusable_precisions(device: torch.device, precisions: list[str], n: int = 512, reps: int = 3) -> dict[str, str]:
    """{precision: why it is not benchmarked here} for each reduced precision whose square GEMM is
    more than ``UNUSABLE_SLOWDOWN`` times slower than fp32's on this device (measured, best of ``reps``)."""
    reduced = [p for p in precisions if p != "fp32"]
    if device.type != "cpu" or not reduced:
        return {}
    times = interleaved({p: square_gemm(device, p, n) for p in ["fp32", *reduced]}, reps=reps, warmup=1)
    rate = {p: matmul_flops(n, n, n) / min(t) / 1e9 for p, t in times.items()}
    return {p: (f"{p} matmuls run at {rate[p]:.1f} GFLOP/s on this CPU against {rate['fp32']:.0f} in fp32 "
                f"({rate['fp32'] / rate[p]:.0f}x slower: no vector {p} arithmetic here), so a {p} step would take "
                f"minutes and nobody trains in {p} on it (train.precision: auto picks fp32)")
            for p in reduced if rate["fp32"] / rate[p] > UNUSABLE_SLOWDOWN}
