"""Does a verdict hold with scale? Per arch of a sweep (per rung of a ladder), its comparison at each size against
the training compute there, and the compute at which its effect changes sign; and, over every pair of variants, how
often a smaller size orders them as the largest does (decision accuracy).

The sign change is read off the Δ means (not the multipliers: every comparison with a paired seed has a Δ, a
multiplier needs curves), linearly in log10 compute: between the adjacent sizes where the sign changes (the last
such pair, past which the sign holds up to the largest size), else extended from the last two sizes when their
trend points towards zero (labelled extrapolated), at most EXTRAPOLATE (half a decade, scaling.py) past the largest
compute; further out it is beyond the data and not estimable. It is a point estimate: the intervals say whether the signs
themselves are resolved. A size whose comparison is NOT_LEARNED (learned.py) gives no point: its Δ measures how far
each model got from initialisation, not the architecture.

Decision accuracy (DataDecide, Magnusson et al. 2025: the share of pairs whose small-scale order holds at the target
scale). The target is the largest point of the sweep: the one whose run groups train with the most FLOPs (the
planned FLOPs, flops_per_token x steps x batch x seq_len, else the completed runs'), the last in sweep order on a tie
(a sweep of a key that leaves compute unchanged, such as train.lr, is judged against its last point). A pair is two
variants of the design (every pair, not only against the baseline; A/A controls are not variants), oriented as
compared (the baseline, or a ladder's earlier rung, first), its Δ = second - first mean final val loss over the
seeds both completed at that size. At each smaller size:
  - ``pairs``: the share of pairs whose Δ there has the sign of their Δ at the target. A pair with no common
    completed seed at either point is listed but not counted, nor is a tie (Δ exactly 0: no order), nor a pair
    with a run group that has not learned at either point (learned.py: its order says nothing about the variants).
  - ``decided``: among the pairs that are a comparison there with a better or worse verdict, the share whose Δ at
    the target has the decided sign (better: < 0, worse: > 0); one whose target order is missing or tied is not
    counted. "no decided verdicts" when there are none.
Every share carries its k and n: two pairs give 0, 0.5 or 1, and that is all they can say.

Plain data, no plotting, so the runner can store it as results.json "scale": {"by_arch": ..., "agreement": ...}.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .comparisons import Comparison
from .learned import learning
from .scaling import EXTRAPOLATE
from .verdicts import BETTER, NOT_LEARNED, WORSE
from ..load import COMPLETED, Results, Variant


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
            "mean": c.mean, "low": c.low, "high": c.high, "n": c.n, "df": c.df, "variance": c.variance,
            "multiplier": None if m is None or m.mean is None else
            {"mean": m.mean, "low": m.low, "high": m.high, "n": len(m.per_seed), "extrapolated": m.extrapolated}}


def crossing(rows: list[dict]) -> tuple[dict | None, str]:
    """Where the Δ means change sign, linear in log10 compute: ({"compute", "extrapolated"} or None, a note)."""
    pts = sorted((math.log10(r["compute"]), r["mean"], r["size"]) for r in rows
                 if r["compute"] and r["compute"] > 0 and r["mean"] is not None and r["verdict"] != NOT_LEARNED)
    if len(pts) < 2:
        return None, ("no crossing: fewer than two sizes have a Δ between models that have learned, and a training "
                      "compute")
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
        return None, (f"no crossing in range: {trend}; on that trend it reaches zero beyond the data (not estimable: "
                      f"more than {EXTRAPOLATE:.2g}× the largest compute)")
    return ({"compute": 10 ** (x2 + beyond), "extrapolated": True},
            f"{trend}; extended on that trend it reaches zero at {10 ** beyond:.3g}× the largest compute")


def scale_summary(results: Results, comparisons: Mapping[str, Comparison]) -> dict:
    """results.json "scale": {"by_arch": by_arch(), "agreement": agreement()}; {} with fewer than two sizes or
    nothing to show."""
    if len(results.sizes) < 2:
        return {}
    archs, agreed = by_arch(results, comparisons), agreement(results, comparisons)
    return {"by_arch": archs, "agreement": agreed} if archs or agreed else {}


def by_arch(results: Results, comparisons: Mapping[str, Comparison]) -> dict:
    """{arch: {"by_size": [{size, compute, verdict, mean, low, high, n, df, variance, multiplier}], "crossing", "crossing_note"}}
    for every arch with a paired Δ at some size, sizes in sweep order.

    compute: the mean training FLOPs of the run group compared with there (the baseline; in a ladder, the previous
    rung); low/high null where not estimable (n: the paired seeds behind it); multiplier: {mean, low, high, n,
    extrapolated} or None; crossing: {compute, extrapolated} or None, the
    note saying why.
    """
    out = {}
    for arch in results.archs:
        groups = [(size, results.group(arch, size)) for size in results.sizes]
        rows = [_row(results, size, comparisons[g.name]) for size, g in groups if g and g.name in comparisons]
        if any(r["mean"] is not None for r in rows):  # an arch never trained (e.g. left out by --variant) is not shown
            point, note = crossing(rows)
            out[arch] = {"by_size": rows, "crossing": point, "crossing_note": note}
    return out


def _completed(group: Variant | None) -> dict[int, float]:
    """Final val loss per completed seed of ``group``."""
    return {} if group is None else {r.seed: r.final_val_loss for r in group.runs
                                     if r.status == COMPLETED and r.final_val_loss is not None}


def pair_delta(first: Variant | None, second: Variant | None) -> float | None:
    """Mean of second - first final val loss over the seeds both completed; None without such a seed."""
    a, b = _completed(first), _completed(second)
    common = [s for s in a if s in b]
    return sum(b[s] - a[s] for s in common) / len(common) if common else None


def _planned_flops(group: Variant) -> float | None:
    """The group's training FLOPs as configured (flops_per_token x steps x batch_size x seq_len), else its runs'."""
    train = group.config.get("train") if isinstance(group.config.get("train"), dict) else {}
    sizes = [train.get(k) for k in ("steps", "batch_size", "seq_len")]
    if group.flops_per_token and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in sizes):
        return group.flops_per_token * sizes[0] * sizes[1] * sizes[2]
    return training_compute(group)


def target_size(results: Results) -> str:
    """The sweep point decisions are judged against: the most training FLOPs (the mean over its run groups), the
    last in sweep order on a tie or where no FLOPs are known."""
    def flops(size: str) -> float:
        known = [_planned_flops(g) for g in results.variants if g.size == size and g.control is None]
        known = [f for f in known if f]
        return sum(known) / len(known) if known else -math.inf

    most = max(flops(s) for s in results.sizes)
    return [s for s in results.sizes if flops(s) == most][-1]


def _pairs(results: Results, archs: list[str]) -> list[tuple[str, str]]:
    """Every pair of ``archs`` once, oriented as compared: the baseline first (a ladder: the earlier rung)."""
    out = []
    for i, a in enumerate(archs):
        for b in archs[i + 1:]:
            out.append((b, a) if not results.ladder and b == results.baseline else (a, b))
    return out


def _sign(x: float | None) -> int | None:
    return None if x is None or x == 0 else (1 if x > 0 else -1)


def _share(flags: list[bool | None]) -> dict:
    """{agree, n, share} over the flags that are not None; share None for n = 0."""
    counted = [f for f in flags if f is not None]
    return {"agree": sum(counted), "n": len(counted), "share": sum(counted) / len(counted) if counted else None}


def agreement(results: Results, comparisons: Mapping[str, Comparison]) -> dict | None:
    """Decision accuracy against the largest point (see the module docstring): {"target": size, "by_size":
    [{"size", "pairs": {agree, n, share}, "decided": {agree, n, share}, "list": [{"first", "second", "delta",
    "verdict", "target_delta", "agrees", "verdict_holds"}]}]}, smaller sizes in sweep order; share None for n = 0;
    verdict None where the pair is not a comparison there; agrees None where either order is missing or tied, or a
    run group of the pair has not learned at either point; verdict_holds None unless the verdict is better/worse and
    the target has an order between learned run groups. None with fewer than two
    sizes or two variants that ran."""
    ran = [a for a in results.archs if any(_completed(results.group(a, s)) for s in results.sizes)]
    if len(results.sizes) < 2 or len(ran) < 2:
        return None
    target = target_size(results)
    out = []
    for size in (s for s in results.sizes if s != target):
        pairs = []
        for first, second in _pairs(results, ran):
            a, b = results.group(first, size), results.group(second, size)
            at_target = results.group(first, target), results.group(second, target)
            here, there = pair_delta(a, b), pair_delta(*at_target)
            c = comparisons.get(b.name) if a is not None and b is not None else None
            verdict = c.verdict if c is not None and c.baseline == a.name else None
            signs = _sign(here), _sign(there)
            unlearned = any(g is not None and learning(g).not_learned for g in (a, b, *at_target))
            pairs.append({"first": first, "second": second, "delta": here, "verdict": verdict, "target_delta": there,
                          "agrees": None if None in signs or unlearned else signs[0] == signs[1],
                          "verdict_holds": None if verdict not in (BETTER, WORSE) or signs[1] is None or unlearned
                          else signs[1] == (-1 if verdict == BETTER else 1)})
        out.append({"size": size, "pairs": _share([p["agrees"] for p in pairs]),
                    "decided": _share([p["verdict_holds"] for p in pairs]), "list": pairs})
    return {"target": target, "by_size": out}
