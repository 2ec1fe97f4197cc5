"""What the data cannot bound: one definition for the verdicts' intervals, the compute multipliers and the report.

An interval is not estimable, and is never shown as digits (the report prints "not estimable at n = k" beside the
point estimate; results.json stores low and high as null with "estimable": false), when

- its variance has fewer than MIN_DF = 2 degrees of freedom: at 1 df the t quantile is 12.7 at 95% and 63.7 at
  99%, so the interval restates one spread estimated from two numbers (the ladder once printed Δ +0.400
  [-17.120, +17.920] and a multiplier 6.48x [0.00, 76783.92] from it); the same rule holds the verdicts back;
- a Δ interval is wider than WIDTH_LIMIT = 10 times the experiment's scale, the larger of its largest |Δ| and the
  equivalence margin: wider than ten times anything the experiment measured, it rules out none of its effects;
- a compute multiplier's interval spans more than RATIO_LIMIT = 100x (high / low): two decades of compute bound
  no statement about which variant is the more efficient.
"""

from __future__ import annotations

import math

MIN_DF = 2
WIDTH_LIMIT = 10.0
RATIO_LIMIT = 100.0


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def delta_estimable(low: float | None, high: float | None, df: int | None, scale: float) -> bool:
    """Whether a Δ interval with this df bounds the difference, at the experiment's scale (max |Δ|, margin)."""
    return (_finite(low, high) and df is not None and df >= MIN_DF
            and high - low <= WIDTH_LIMIT * scale)


def ratio_estimable(low: float | None, high: float | None, df: int | None) -> bool:
    """Whether a ratio's interval (low, high > 0) with this df bounds it: df >= MIN_DF and high / low <= 100."""
    return _finite(low, high) and df is not None and df >= MIN_DF and low > 0 and high <= RATIO_LIMIT * low


def not_estimable(n: int | None) -> str:
    """How the report says it: 'not estimable at n = 2' (n: the seeds behind the number)."""
    return "not estimable" if n is None else f"not estimable at n = {n}"
