"""Compute multipliers: the training FLOPs the baseline needs to reach the variant's final loss over the variant's
own FLOPs, per seed (read off the validation curves), and their geometric mean across seeds with an interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from .estimable import ratio_estimable


def _is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _log_linear_flops(logf: np.ndarray, loss: np.ndarray, target: float) -> float | None:
    """log FLOPs at which the least-squares line loss = a + b log F reaches target; None unless b < 0."""
    if logf.size < 2 or np.ptp(logf) == 0:
        return None
    b, a = np.polyfit(logf, loss, 1)
    return float((target - a) / b) if b < 0 else None


def compute_multiplier(curve: Sequence[tuple[float, float]], loss: float, flops: float) -> tuple[float | None, bool]:
    """(baseline FLOPs to reach `loss`) / `flops`, and whether that needed extrapolation.

    The baseline's curve is its running minimum of loss over FLOPs (eval noise cannot un-reach a loss), and the
    FLOPs at `loss` are its first crossing, linear in log FLOPs between the bracketing evals. Beyond the curve
    (loss below its best, or above its first eval) a least-squares line loss = a + b log FLOPs on the nearest
    third of the evals (at least 3) is extended: loss is convex in log FLOPs, so the line reaches the loss early
    and the multiplier is underestimated, never inflated (for loss = 2 + 10 F^-0.3 over 4 decades, 1.6x low at
    2x past the curve). (None, True) when the line does not fall; (None, False) for unusable input.
    """
    pts = sorted((float(f), float(v)) for f, v in curve if _is_finite(f) and _is_finite(v) and f > 0)
    if not pts or not _is_finite(loss) or not _is_finite(flops) or flops <= 0:
        return None, False
    logf = np.log([f for f, _ in pts])
    raw = np.array([v for _, v in pts])
    best = np.minimum.accumulate(raw)
    if best[-1] <= loss <= best[0]:
        i = int(np.argmax(best <= loss))  # first eval at or below the loss
        if i == 0 or best[i] == loss:
            return float(math.exp(logf[i]) / flops), False
        frac = (best[i - 1] - loss) / (best[i - 1] - best[i])
        return float(math.exp(logf[i - 1] + frac * (logf[i] - logf[i - 1])) / flops), False
    k = min(len(pts), max(3, -(-len(pts) // 3)))
    part = slice(-k, None) if loss < best[-1] else slice(0, k)
    at = _log_linear_flops(logf[part], raw[part], float(loss))
    return (None if at is None else float(math.exp(at) / flops)), True


@dataclass(frozen=True)
class Multiplier:
    """Geometric mean of the per-seed multipliers with a t-interval on their logs. low/high None where the data
    cannot bound it (estimable.py: fewer than 3 seeds, df < 2, or an interval spanning more than 100x).
    extrapolated: some seed's multiplier came from beyond the baseline's curve (flagged, never silent)."""

    mean: float | None
    low: float | None
    high: float | None
    per_seed: list[float]
    extrapolated: bool

    @property
    def estimable(self) -> bool:
        return self.low is not None and self.high is not None


def combine_multipliers(values: Sequence[float | None], extrapolated: Sequence[bool],
                        conf: float = 0.95) -> Multiplier:
    """Across seeds: exp(mean log) and exp(mean log ± t_{(1+conf)/2, n-1} * s_log / sqrt(n)), the interval only
    where estimable (n - 1 >= 2 df, spanning at most 100x); None values skipped.

    The logs' spread stays per comparison rather than pooled like the losses' (pooled.py): a multiplier's
    per-seed noise is the loss noise divided by the slope of the loss curve where it is read, which differs
    between comparisons and sizes, so the loss model's variance does not carry over to it."""
    if len(values) != len(extrapolated):
        raise ValueError(f"combine_multipliers needs equal lengths, got {len(values)} and {len(extrapolated)}")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must be in (0, 1), got {conf}")
    kept = [float(v) for v in values if _is_finite(v) and v > 0]
    flag = any(extrapolated)
    if not kept:
        return Multiplier(None, None, None, [], flag)
    logs = np.log(kept)
    mean = float(logs.mean())
    if len(kept) == 1:
        return Multiplier(math.exp(mean), None, None, kept, flag)
    half = float(sps.t.ppf(0.5 + conf / 2.0, len(kept) - 1)) * float(logs.std(ddof=1)) / math.sqrt(len(kept))
    low, high = math.exp(mean - half), math.exp(mean + half)
    if not ratio_estimable(low, high, len(kept) - 1):
        low = high = None
    return Multiplier(math.exp(mean), low, high, kept, flag)
