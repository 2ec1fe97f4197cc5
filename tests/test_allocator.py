"""training.allocator: on glibc, a training-step-like allocation pattern stops page-faulting once the
heap has grown to the step's peak. (Under glibc's defaults the same pattern faults 83-99% of its pages
in every step in most runs and none in some, depending on where small allocations land, so the
default is not asserted.) It runs in its own interpreter: malloc settings are process-wide."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="the settings are glibc's")

_STEPS = """
import json, resource, torch
from workbench.training.allocator import keep_freed_memory
kept = keep_freed_memory()
sizes = [(i % 7 + 1) << 20 for i in range(24)]  # 1-7 MiB tensors, 84 MiB a step, the same every step

def step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    live = [torch.empty(n, dtype=torch.uint8).fill_(1) for n in sizes]
    del live
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults = [step() for _ in range(8)]
print(json.dumps({"kept": kept, "faults": faults, "pages": sum(sizes) // resource.getpagesize()}))
"""


def test_a_step_reuses_the_memory_the_previous_one_freed_without_page_faults():
    done = subprocess.run([sys.executable, "-c", _STEPS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["kept"] is True
    assert result["faults"][0] > 0.9 * result["pages"]  # the first step faults its memory in, as it must
    assert max(result["faults"][4:]) < 0.05 * result["pages"]  # steps 5-8: the heap is at the step's peak
