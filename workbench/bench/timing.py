"""Timing helpers: interleaved repetitions, medians and paired ratios.

Cases are timed round-robin (each round runs every case once, in a rotating order) so that slow
drifts of the machine (thermal, a neighbour's load) hit every case alike; a ratio is the median of
the per-round ratios, which cancels what a round's cases share.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from typing import Callable, Hashable, Mapping


def median(values) -> float:
    """Median of a non-empty sequence."""
    values = list(values)
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def round_robin_order(names: list, round_index: int) -> list:
    """``names`` rotated by ``round_index``: every case takes every position equally often."""
    k = round_index % len(names) if names else 0
    return names[k:] + names[:k]


def interleaved(cases: Mapping[Hashable, Callable[[], object]], reps: int, warmup: int = 1,
                clock: Callable[[], float] = time.perf_counter, collect: bool = False) -> dict[Hashable, list[float]]:
    """Seconds per call of each case over ``reps`` interleaved rounds, after ``warmup`` untimed rounds.

    Returns {name: [seconds of round 0, round 1, ...]}, aligned by round for ``paired_ratio``.
    ``collect`` runs the garbage collector before each call (outside the timing).
    """
    names = list(cases)
    times: dict[Hashable, list[float]] = {name: [] for name in names}
    for r in range(warmup + reps):
        for name in round_robin_order(names, r):
            if collect:
                gc.collect()
            start = clock()
            cases[name]()
            elapsed = clock() - start
            if r >= warmup:
                times[name].append(elapsed)
    return times


def round_ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    """numerator[i] / denominator[i] for each round (e.g. reference time / candidate time = speedup)."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError("paired_ratio needs two equally long, non-empty lists")
    return [n / d for n, d in zip(numerator, denominator)]


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of ``round_ratios``."""
    return median(round_ratios(numerator, denominator))


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval for the median of ``values``: the order statistics
    x_(k) and x_(n+1-k), with k the largest rank for which each tail, P(Binomial(n, 1/2) < k), stays
    within (1 - level) / 2, so the coverage is at least ``level`` whatever the distribution. None when
    there are too few values for any such interval (fewer than 6 at 95%): the data cannot bound it."""
    xs = sorted(values)
    n, k, tail = len(xs), 0, 0.0
    while k < n:
        tail += math.comb(n, k) / 2**n  # P(Binomial(n, 1/2) <= k)
        if tail > (1 - level) / 2:
            break
        k += 1
    return (xs[k - 1], xs[n - k]) if k else None


def paired_ratio_interval(numerator: list[float], denominator: list[float],
                          level: float = 0.95) -> tuple[float, float] | None:
    """``median_interval`` of the per-round ratios whose median ``paired_ratio`` reports."""
    return median_interval(round_ratios(numerator, denominator), level)


def spread(values: list[float]) -> float:
    """Relative interquartile range, (q3 - q1) / median: how noisy a measurement was."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return float((q3 - q1) / median(values))
