"""Seed statistics for the report's tables: mean ± sample std over the seeds that have a value.

A pure function of plain numbers; None and non-finite entries are ignored (a missing or diverged seed must not
poison a mean), so it can be tested directly against numpy. Comparisons between variants are in verdicts.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np


def _is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Summary:
    """n finite values; std is the sample std (ddof=1), None when n < 2; all None when n == 0."""

    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


def summarize(values: Iterable[float | None]) -> Summary:
    x = np.array([v for v in values if _is_finite(v)], dtype=np.float64)
    if x.size == 0:
        return Summary(0, None, None, None, None)
    std = float(x.std(ddof=1)) if x.size > 1 else None
    return Summary(int(x.size), float(x.mean()), std, float(x.min()), float(x.max()))
