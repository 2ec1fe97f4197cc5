"""Does a verdict hold with scale? Per arch of a sweep (per rung of a ladder), its comparison at each size against
the training compute there, and the compute at which its effect changes sign.

The sign change is read off the Δ means (not the multipliers: every comparison with a paired seed has a Δ, a
multiplier needs curves), linearly in log10 compute: between the adjacent sizes where the sign changes (the last
such pair, past which the sign holds up to the largest size), else extended from the last two sizes when their
trend points towards zero (labelled extrapolated). It is a point estimate: the intervals say whether the signs
themselves are resolved. Plain data, no plotting, so the runner can store it as results.json "scale".
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .comparisons import Comparison
from ..load import COMPLETED, Results, Variant

EXTRAPOLATE = 1000.0  # an extrapolated crossing is given up to this factor beyond the largest compute, as in scaling


def training_compute(group: Variant | None) -> float | None:
    """Mean training FLOPs of the group's completed runs (train_tokens × FLOPs/token where a run lacks them)."""
    if group is None:
        return None
    flops = [r.train_flops or (r.train_tokens * group.flops_per_token if r.train_tokens and group.flops_per_token
                               else None) for r in group.runs if r.status == COMPLETED]
    flops = [f for f in flops if f]
    return sum(flops) / len(flops) if flops else None


def _row(results: Results, size: str, c: Comparison) -> dict:
    m = c.multiplier
    return {"size": size, "compute": training_compute(results.variant(c.baseline)), "verdict": c.verdict,
            "mean": c.mean, "low": c.low, "high": c.high,
            "multiplier": None if m is None or m.mean is None else
            {"mean": m.mean, "low": m.low, "high": m.high, "extrapolated": m.extrapolated}}


def crossing(rows: list[dict]) -> tuple[dict | None, str]:
    """Where the Δ means change sign, linear in log10 compute: ({"compute", "extrapolated"} or None, a note)."""
    pts = sorted((math.log10(r["compute"]), r["mean"], r["size"]) for r in rows
                 if r["compute"] and r["compute"] > 0 and r["mean"] is not None)
    if len(pts) < 2:
        return None, "no crossing: fewer than two sizes have both a Δ and a training compute"
    if any(a[0] == b[0] for a, b in zip(pts, pts[1:])):
        return None, "no crossing: some sizes were trained with the same compute"
    flips = [i for i in range(len(pts) - 1) if np.sign(pts[i][1]) != np.sign(pts[i + 1][1])]
    if flips:
        (x1, y1, s1), (x2, y2, s2) = pts[flips[-1]], pts[flips[-1] + 1]
        note = f"Δ changes sign between {s1} ({y1:+.4f}) and {s2} ({y2:+.4f})"
        if len(flips) > 1:
            note += f"; it changes sign {len(flips)} times across the sizes, the last is given"
        return {"compute": 10 ** (x1 + y1 / (y1 - y2) * (x2 - x1)), "extrapolated": False}, note
    (x1, y1, s1), (x2, y2, s2) = pts[-2:]
    if not abs(y2) < abs(y1):
        return None, f"no crossing in range: Δ keeps its sign and does not shrink from {s1} ({y1:+.4f}) to {s2} ({y2:+.4f})"
    beyond = y2 * (x2 - x1) / (y1 - y2)  # decades past the largest compute where the line through both reaches 0
    trend = f"Δ shrinks towards zero from {s1} ({y1:+.4f}) to {s2} ({y2:+.4f})"
    if beyond > math.log10(EXTRAPOLATE):
        return None, f"no crossing in range: {trend}, but on that trend reaches zero only beyond {EXTRAPOLATE:g}× the largest compute"
    return ({"compute": 10 ** (x2 + beyond), "extrapolated": True},
            f"{trend}; extended on that trend it reaches zero at {10 ** beyond:.3g}× the largest compute")


def scale_summary(results: Results, comparisons: Mapping[str, Comparison]) -> dict:
    """{arch: {"by_size": [{size, compute, verdict, mean, low, high, multiplier}], "crossing", "crossing_note"}}
    for every arch with a paired Δ at some size, sizes in sweep order; {} with fewer than two sizes.

    compute: the mean training FLOPs of the run group compared with there (the baseline; in a ladder, the previous
    rung); multiplier: {mean, low, high, extrapolated} or None; crossing: {compute, extrapolated} or None, the
    note saying why.
    """
    if len(results.sizes) < 2:
        return {}
    out = {}
    for arch in results.archs:
        groups = [(size, results.group(arch, size)) for size in results.sizes]
        rows = [_row(results, size, comparisons[g.name]) for size, g in groups if g and g.name in comparisons]
        if any(r["mean"] is not None for r in rows):  # an arch never trained (e.g. left out by --variant) is not shown
            point, note = crossing(rows)
            out[arch] = {"by_size": rows, "crossing": point, "crossing_note": note}
    return out
