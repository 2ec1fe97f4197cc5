"""Compute scaling laws: fit L(C) = E + A * (C / c0)^(-alpha) to (training FLOPs, final loss) points,
and find where two fitted laws cross (read at most EXTRAPOLATE beyond the data).

Pure numpy/scipy, no report types, so it can be tested on points drawn from a known law. ``c0`` (the
smallest measured compute, rounded down to a power of ten) keeps A of order one; C spans many
decades and an unscaled A would be ~1e5 with a badly conditioned fit.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize

# A fit, or a trend through the last two sizes, is read at most this factor (half a decade) beyond the compute
# measured, either side: three points inside one decade do not bound a power law decades away, so a crossing further
# out is reported as beyond the data (not estimable), never as digits, and a fit is drawn no further.
EXTRAPOLATE = 10 ** 0.5
MAX_ALPHA = 5.0
MIN_POINTS = 3  # three parameters
MIN_SPAN = 2.0  # largest / smallest compute: below this the data says nothing about a power of C


@dataclass(frozen=True)
class PowerLaw:
    """L(C) = E + A * (C / c0)^(-alpha), fitted to ``n`` points spanning [c_min, c_max].

    ``*_err`` are one-sigma uncertainties from the fit's covariance (residual variance scaled), None
    when there are no spare points (n == 3) or the covariance is undefined.
    """

    E: float
    A: float
    alpha: float
    c0: float
    n: int
    c_min: float
    c_max: float
    rmse: float
    E_err: float | None = None
    A_err: float | None = None
    alpha_err: float | None = None

    def __call__(self, c):
        return self.E + self.A * (np.asarray(c, dtype=np.float64) / self.c0) ** (-self.alpha)


def _law(x, E, A, alpha):
    return E + A * x ** (-alpha)


def _initial_guess(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Best of a grid over E: for each E, log(L - E) is linear in log x, fitted by least squares."""
    best, guess = math.inf, (0.0, float(y.max()), 0.5)
    logx = np.log(x)
    for frac in np.linspace(0.0, 0.995, 200):
        E = frac * float(y.min())
        slope, intercept = np.polyfit(logx, np.log(y - E), 1)
        alpha = min(max(-slope, 1e-3), MAX_ALPHA)
        A = math.exp(min(intercept, 50.0))
        sse = float(np.sum((_law(x, E, A, alpha) - y) ** 2))
        if sse < best:
            best, guess = sse, (E, A, alpha)
    return guess


def reference_compute(compute: Sequence[float]) -> float:
    """c0: the smallest compute rounded down to a power of ten."""
    return 10.0 ** math.floor(math.log10(min(compute)))


def fit_power_law(compute: Sequence[float], loss: Sequence[float], c0: float | None = None) -> PowerLaw:
    """Least-squares fit of L(C) = E + A (C/c0)^-alpha with 0 <= E <= min(L), A > 0, 0 < alpha <= 5;
    ``c0`` defaults to ``reference_compute(compute)`` (pass one c0 to compare several fits' A).

    Raises ValueError with fewer than three distinct compute values (three parameters) or
    non-positive inputs.
    """
    c = np.asarray(compute, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    keep = np.isfinite(c) & np.isfinite(y)
    c, y = c[keep], y[keep]
    if len(np.unique(c)) < MIN_POINTS:
        raise ValueError(f"a power law needs at least {MIN_POINTS} distinct compute values, got {len(np.unique(c))}")
    if (c <= 0).any() or (y <= 0).any():
        raise ValueError("compute and loss must be positive")
    if c.max() < MIN_SPAN * c.min():
        raise ValueError(f"the compute values span only {c.max() / c.min():.3g}x (a fit needs at least {MIN_SPAN:g}x; "
                         "an equal-FLOPs budget gives every size the same compute)")
    c0 = reference_compute(c) if c0 is None else float(c0)
    x = c / c0
    p0 = _initial_guess(x, y)
    upper_E = float(y.min())
    p0 = (min(p0[0], upper_E * (1 - 1e-9)), max(p0[1], 1e-12), p0[2])
    with warnings.catch_warnings():  # three points leave no residual: no covariance, said below
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        params, cov = optimize.curve_fit(_law, x, y, p0=p0, bounds=([0.0, 0.0, 0.0], [upper_E, np.inf, MAX_ALPHA]),
                                         maxfev=20000)
    E, A, alpha = (float(p) for p in params)
    residual = y - _law(x, E, A, alpha)
    errors: list[float | None] = [None, None, None]
    if len(y) > MIN_POINTS and np.all(np.isfinite(cov)):
        errors = [float(math.sqrt(v)) if v >= 0 else None for v in np.diag(cov)]
    return PowerLaw(E, A, alpha, c0, int(len(y)), float(c.min()), float(c.max()),
                    float(np.sqrt(np.mean(residual ** 2))), *errors)


def crossings(f: PowerLaw, g: PowerLaw, lo: float, hi: float, points: int = 4000) -> list[float]:
    """Compute values in [lo, hi] where f(C) = g(C): sign changes of f - g on a log grid, refined
    with Brent's method (in log C)."""
    if not (0 < lo < hi):
        return []
    grid = np.geomspace(lo, hi, points)
    diff = f(grid) - g(grid)
    found = []

    def h(log_c: float) -> float:
        return float(f(math.exp(log_c)) - g(math.exp(log_c)))

    for i in np.flatnonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) < 0):
        found.append(math.exp(optimize.brentq(h, math.log(grid[i]), math.log(grid[i + 1]), xtol=1e-12)))
    found += [float(grid[i]) for i in np.flatnonzero(diff == 0)]
    return sorted(found)
