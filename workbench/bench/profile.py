"""Where a training step's time goes, from ``torch.profiler``: the reason the bench prints beside a
missed speed target, measured on the machine that missed it.

Each operator's self time is put in one of a few categories (matrix multiplies, attention kernels,
code inductor generated, the optimiser, other), per step; the comparison of two steps lists the
categories and the single operators by how much more time the workbench spends in them.
"""

from __future__ import annotations

from typing import Callable

import torch

CATEGORIES = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm",
                "aten::addmm_", "mkldnn", "aten::_weight_int")),
    ("attention", ("scaled_dot_product", "flash_attn", "aten::_efficient_attention")),
    ("compiled kernels", ("## Call CompiledFxGraph", "Torch-Compiled Region", "CompiledFunction")),
    ("optimizer", ("adam", "_foreach", "Optimizer.", "clip_grad")),
)


def category(name: str) -> str:
    """The category of one profiler event name."""
    lowered = name.lower()
    for label, needles in CATEGORIES:
        if any(needle.lower() in lowered for needle in needles):
            return label
    return "other"


def self_times(step: Callable[[], None], steps: int = 2) -> dict[str, float]:
    """{operator name: self CPU milliseconds per step} over ``steps`` profiled calls of ``step``."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: e.self_cpu_time_total / 1000 / steps for e in prof.key_averages()}


def by_category(times: dict[str, float]) -> dict[str, float]:
    """Self milliseconds per step summed per category."""
    totals = {label: 0.0 for label, _ in CATEGORIES} | {"other": 0.0}
    for name, ms in times.items():
        totals[category(name)] += ms
    return totals


def compare(ours: Callable[[], None], reference: Callable[[], None], top: int = 5) -> dict:
    """Profile both steps: per-category ms of each and the difference, plus the ``top`` operators
    where the workbench spends the most extra time (compiled graphs are named by category, since
    their hashes differ between the two models)."""
    mine, theirs = self_times(ours), self_times(reference)
    cat_mine, cat_theirs = by_category(mine), by_category(theirs)
    grouped = {}
    for times, side in ((mine, "workbench"), (theirs, "reference")):
        for name, ms in times.items():
            key = category(name) if category(name) == "compiled kernels" else name
            grouped.setdefault(key, {"workbench": 0.0, "reference": 0.0})[side] += ms
    extra = sorted(((k, v["workbench"] - v["reference"]) for k, v in grouped.items()), key=lambda kv: -kv[1])
    return {
        "categories": {c: {"workbench_ms": cat_mine[c], "reference_ms": cat_theirs[c]} for c in cat_mine},
        "total_ms": {"workbench": sum(mine.values()), "reference": sum(theirs.values())},
        "most_extra": [{"op": k, "extra_ms": ms} for k, ms in extra[:top] if ms > 0],
    }


def summary(profile: dict) -> str:
    """One sentence: per category 'ours vs theirs ms', then the operators costing the workbench most."""
    cats = ", ".join(f"{c} {v['workbench_ms']:.0f} vs {v['reference_ms']:.0f} ms"
                     for c, v in profile["categories"].items() if v["workbench_ms"] or v["reference_ms"])
    extra = "; ".join(f"{e['op']} +{e['extra_ms']:.1f} ms" for e in profile["most_extra"]) or "none"
    return f"profiled per step, workbench vs reference: {cats}; most extra time: {extra}"
