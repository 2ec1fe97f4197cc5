"""A module kind's verdict across the sweep: flat, growing or shrinking, from its max/min ratio.

μP's promise (Tensor Programs V) is that every activation's typical size stays Θ(1) as the width grows;
a coordinate check reads that off a handful of widths. "flat": the largest value is at most
``FLAT_RATIO`` times the smallest (nanoGPT-mup's plots and the issue's acceptance use 2x over 64..512);
otherwise "growing" when the value at the largest size exceeds the one at the smallest, else
"shrinking". A sweep with a non-finite value (training diverged there) has no ratio: "diverged".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FLAT_RATIO = 2.0
VERDICTS = ("flat", "growing", "shrinking", "diverged")


def spread(values: Sequence[float]) -> float | None:
    """max / min of the non-negative ``values`` (inf where only the smallest is 0, 1 where all are); None where
    one is not finite: a diverged run has no ratio."""
    if not values or any(not math.isfinite(v) for v in values):
        return None
    low, high = min(values), max(values)
    if low < 0:
        raise ValueError(f"mean |activation| values are non-negative, got {low}")
    if high == 0:
        return 1.0
    return math.inf if low == 0 else high / low


def verdict(values: Sequence[float]) -> str:
    """The verdict for one kind's values, ordered from the smallest size to the largest."""
    ratio = spread(values)
    if ratio is None:
        return "diverged"
    if ratio <= FLAT_RATIO:
        return "flat"
    return "growing" if values[-1] > values[0] else "shrinking"
