"""What ``torch.compile`` costs before the first compiled step: cold (nothing cached: a user's first
run) and warm (inductor's on-disk caches filled: every later run), measured alike for each model.

Fairness: both sides compile into the same fresh, empty cache directory (so neither reuses kernels
an earlier bench or training run left behind), and a small unrelated model is compiled first, so
the one-time start-up of the compiler (imports, the C++ toolchain probe, the compile workers) is
charged to neither. Warm is the same compile after ``torch._dynamo.reset()``: Dynamo traces again,
and AOTAutograd and inductor load their results from the caches, as a new process would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from typing import Callable, Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


@contextlib.contextmanager
def fresh_cache() -> Iterator[str]:
    """An empty inductor cache directory (FX graphs, AOTAutograd graphs, C++ kernels) for the
    duration; the user's own cache is untouched and back in place afterwards."""
    previous = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="workbench-bench-inductor-") as directory:
        os.environ[CACHE_ENV] = directory
        try:
            yield directory
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous


def warm_up_compiler(device: torch.device) -> float:
    """Compile and run forward + backward of a tiny MLP: the compiler's one-time start-up, paid
    here so that no measured model pays it. Returns its seconds."""
    start = time.perf_counter()
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 1)).to(device)
    model.compile()
    model(torch.randn(4, 8, device=device)).sum().backward()
    return time.perf_counter() - start


def first_step_seconds(make_step: Callable[[], Callable[[], None]]) -> tuple[Callable[[], None], float]:
    """Build a compiled model's step and run it once: (the step, seconds of that first call, which
    compiles forward and backward)."""
    step = make_step()
    start = time.perf_counter()
    step()
    return step, time.perf_counter() - start


def compile_costs(makers: dict[str, Callable[[], Callable[[], None]]], device: torch.device
                  ) -> tuple[dict[str, Callable[[], None]], dict[str, dict[str, float]]]:
    """Cold and warm compile seconds of each ``makers`` entry (a function building a fresh compiled
    model's step closure). Returns the warm-compiled steps, ready to time, and
    {name: {"cold": s, "warm": s}}."""
    seconds: dict[str, dict[str, float]] = {name: {} for name in makers}
    steps = {}
    with fresh_cache():
        log.info("  compiler start-up (not charged to any model): %.0f s", warm_up_compiler(device))
        for name, make in makers.items():
            _, seconds[name]["cold"] = first_step_seconds(make)
            log.info("  compiled %s cold in %.0f s", name, seconds[name]["cold"])
        torch._dynamo.reset()
        for name, make in makers.items():
            steps[name], seconds[name]["warm"] = first_step_seconds(make)
            log.info("  compiled %s warm (from the caches) in %.1f s", name, seconds[name]["warm"])
    return steps, seconds
