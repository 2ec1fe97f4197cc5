"""Attention kernels (naive, sdpa, flash where it can run): time and peak memory of forward +
backward against sequence length. naive materialises the (T, T) scores, so its memory grows
quadratically; the fused kernels' grows linearly."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import torch

from components import registry
from components.attention import flash_unavailable_reason

from .gemm import sync
from .memory import peak_memory_bytes
from .timing import interleaved, median

log = logging.getLogger(__name__)


@dataclass
class AttentionShape:
    batch_size: int = 2
    n_heads: int = 8
    head_dim: int = 64
    seq_lens: tuple[int, ...] = (128, 256, 512, 1024, 2048)


def kernels(device: torch.device) -> tuple[list[str], dict[str, str]]:
    """Kernels that run here, and {kernel: why not} for the others."""
    names, skipped = [], {}
    for name in registry.available("attention"):
        reason = flash_unavailable_reason() if name == "flash" else None
        if reason is None and name == "flash" and device.type != "cuda":
            reason = "flash runs on CUDA only"
        if reason:
            skipped[name] = reason
        else:
            names.append(name)
    return names, skipped


def growth_exponent(seq_lens: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(seq_len): ~1 linear, ~2 quadratic."""
    xs = [math.log(t) for t in seq_lens]
    ys = [math.log(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def run(shape: AttentionShape, device: torch.device, reps: int) -> dict:
    """Rows {kernel, seq_len, ms (forward + backward), peak_mb} and each kernel's growth exponents."""
    names, skipped = kernels(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # flash needs half precision
    rows = []
    for T in shape.seq_lens:
        g = torch.Generator(device="cpu").manual_seed(T)
        q, k, v = (torch.randn(shape.batch_size, shape.n_heads, T, shape.head_dim, generator=g).to(device, dtype)
                   .requires_grad_() for _ in range(3))
        grad = torch.randn(shape.batch_size, shape.n_heads, T, shape.head_dim, generator=g).to(device, dtype)

        def fwd_bwd(kernel):
            def call():
                out = kernel(q, k, v)
                out.backward(grad)
                q.grad = k.grad = v.grad = None
                sync(device)
            return call

        calls = {name: fwd_bwd(registry.build("attention", name)) for name in names}
        times = interleaved(calls, reps=reps, warmup=1)
        for name in names:
            peak = peak_memory_bytes(calls[name], device)
            rows.append({"kernel": name, "seq_len": T, "ms": 1000 * median(times[name]), "peak_mb": peak / 2**20})
        log.info("attention: T=%d done", T)
    growth = {}
    for name in names:
        mine = [r for r in rows if r["kernel"] == name]
        growth[name] = {
            "memory_exponent": growth_exponent([r["seq_len"] for r in mine], [r["peak_mb"] for r in mine]),
            "time_exponent": growth_exponent([r["seq_len"] for r in mine], [r["ms"] for r in mine]),
        }
    return {"shape": {**asdict(shape), "dtype": str(dtype).removeprefix("torch.")}, "rows": rows, "growth": growth,
            "skipped": skipped}
