"""What ``torch.compile`` costs before the first compiled step: cold (nothing cached: a user's first
run) and warm (inductor's on-disk caches filled: every later run), measured alike for each model.

Fairness: each cold compile runs in its own fresh process (spawned, so no compiler state of an
earlier compile in memory helps it; whichever model went second used to gain ~9 s that way) with
its own empty cache directory, after a small unrelated model has been compiled there so the
compiler's start-up (imports, C++ toolchain and vector ISA probes, compile workers) is charged to neither; the
order is A B B A and each model's cold time is the faster of its two. Warm is the same compile in
another fresh process from the caches its cold compile filled, as a user's next run: Dynamo traces
again, AOTAutograd and inductor load their results and kernels from disk; the faster of two too.
Measured in the bench's own process instead, warm depended on what that process had loaded before
(workbench 1.4-1.7 s there against 3.4-3.5 s in fresh processes, docs/performance.md).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import tempfile
import time
from typing import Callable, Iterator

import torch
from torch import nn

from ..training.allocator import keep_freed_memory

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
    """Compile and run forward + backward of a tiny MLP, on CPU probe the vector ISAs, and make the
    compiler's lazy imports: its one-time start-up, paid here so that no measured model pays it.
    Returns its seconds.

    The ISA probe (``pick_vec_isa``: a test build and a fresh Python that loads it, per ISA) runs
    once per process, the first time inductor writes a C++ kernel with loops, which the tiny MLP
    does not: 6.5-7.7 s on a 2-core AMD EPYC, until the seventh session of issue 27 charged to
    every model's cold compile alike (docs/performance.md)."""
    start = time.perf_counter()
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 1)).to(device)
    model.compile()
    model(torch.randn(4, 8, device=device)).sum().backward()
    if device.type == "cpu":
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        pick_vec_isa()
    _lazy_compiler_imports()
    return time.perf_counter() - start


def _lazy_compiler_imports() -> None:
    """What a model's first compile imports and the tiny MLP's does not (torch 2.13, ~0.6 s in all,
    profiled in the eighth session of issue 27): inductor's registration of every device's code
    generators (first met computing an FX graph's cache key), sympy's units (``sympy.simplify``,
    first met in inductor's CPU loop tiling) and Dynamo's check for ``local_map`` functions. Which
    model met them first used to pay them."""
    import sympy.physics.units  # noqa: F401
    from torch._inductor.codegen.common import init_backend_registration

    init_backend_registration()
    if torch.distributed.is_available():
        from torch.distributed.tensor.experimental import _func_map  # noqa: F401


def first_step_seconds(make_step: Callable[[], Callable[[], None]]) -> float:
    """Build a compiled model's step and run it once: the seconds of that first call, which compiles
    forward and backward."""
    step = make_step()
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


# Where a compile's seconds go (torch._dynamo.utils.compilation_time_metrics keys): the reason the
# bench gives beside a missed compile-time target.
PHASES = {
    "bytecode_tracing": "Dynamo tracing",
    "aot_trace_joint_graph": "AOTAutograd tracing",
    "compile_fx.<locals>.fw_compiler_base": "inductor, forward",
    "compile_fx.<locals>.bw_compiler": "inductor, backward",
    "async_compile.wait": "C++ kernel builds (waited for)",
}


def _fresh_compile_seconds(make: Callable[[], Callable[[], None]], device: torch.device
                           ) -> tuple[float, dict[str, float]]:
    """In a fresh process: the heap the bench times in, the compiler's start-up, then the first step
    of ``make()``'s model: (its seconds, {phase: seconds} of its compile)."""
    from torch._dynamo.utils import compilation_time_metrics

    if device.type == "cpu":
        keep_freed_memory()
    warm_up_compiler(device)
    compilation_time_metrics.clear()
    seconds = first_step_seconds(make)
    return seconds, {label: sum(compilation_time_metrics.get(key, [])) for key, label in PHASES.items()}


def compile_costs(makers: dict[str, Callable[[], Callable[[], None]]], device: torch.device
                  ) -> tuple[dict[str, Callable[[], None]], dict[str, dict[str, float]]]:
    """Cold and warm compile seconds of each ``makers`` entry (a picklable function, e.g. a
    ``functools.partial`` of a module-level one, building a fresh compiled model's step closure).
    Returns the compiled steps, ready to time, and {name: {"cold": s, "warm": s, "cold_phases":
    {phase: s}}}."""
    names = list(makers)
    runs: dict[str, dict[str, list[tuple[float, dict[str, float]]]]] = {"cold": {n: [] for n in names},
                                                                          "warm": {n: [] for n in names}}
    steps = {}
    spawn = multiprocessing.get_context("spawn")

    def compile_in_fresh_process(name: str, when: str) -> None:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            runs[when][name].append(pool.submit(_fresh_compile_seconds, makers[name], device).result())
        log.info("  compiled %s %s (a fresh process, %s caches) in %.1f s", name, when,
                 "empty" if when == "cold" else "filled", runs[when][name][-1][0])

    with fresh_cache():
        log.info("  compiler start-up (not charged to any model): %.0f s", warm_up_compiler(device))
    for order, name in enumerate(names + names[::-1]):  # A B ... B A
        with fresh_cache():
            compile_in_fresh_process(name, "cold")
            compile_in_fresh_process(name, "warm")
            if order >= len(names):  # the step the bench times, compiled here from these caches
                steps[name] = makers[name]()
                steps[name]()
    # A neighbour's load can only slow a compile down: each time is the faster of a model's two.
    faster = {when: {name: min(runs[when][name], key=lambda run: run[0]) for name in names} for when in runs}
    return steps, {name: {"cold": faster["cold"][name][0], "warm": faster["warm"][name][0],
                          "cold_phases": faster["cold"][name][1]} for name in names}
