"""Seed statistics for ablation tables: mean ± sample std, and paired differences with a Student-t CI.

Pure functions of plain numbers; None and non-finite entries are ignored (a missing or diverged seed
must not poison a mean), so they can be tested directly against numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import stats as sps

BETTER, WORSE, NOISE, NOT_AVAILABLE, BASELINE = "better", "worse", "within noise", "n/a", "baseline"


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


@dataclass(frozen=True)
class PairedDiff:
    """Mean of per-pair differences a - b, with a two-sided CI (low, high); no CI when n < 2."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    conf: float

    @property
    def verdict(self) -> str:
        """Lower loss is better: 'better' if the whole CI is below 0, 'worse' if above, else noise."""
        if self.low is None or self.high is None:
            return NOT_AVAILABLE
        if self.high < 0:
            return BETTER
        if self.low > 0:
            return WORSE
        return NOISE


def paired_diff_ci(a: Sequence[float | None], b: Sequence[float | None], conf: float = 0.95) -> PairedDiff:
    """Paired difference a[i] - b[i] over the pairs where both are finite.

    CI: mean ± t_{(1+conf)/2, n-1} * s / sqrt(n), s the sample std of the differences (ddof=1).
    Pairing by seed removes the seed-to-seed variation both variants share (same data order, same init RNG).
    """
    if len(a) != len(b):
        raise ValueError(f"paired_diff_ci needs equal lengths, got {len(a)} and {len(b)}")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must be in (0, 1), got {conf}")
    d = np.array([x - y for x, y in zip(a, b) if _is_finite(x) and _is_finite(y)], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return PairedDiff(0, None, None, None, conf)
    mean = float(d.mean())
    if n == 1:
        return PairedDiff(1, mean, None, None, conf)
    half = float(sps.t.ppf(0.5 + conf / 2.0, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return PairedDiff(n, mean, mean - half, mean + half, conf)
