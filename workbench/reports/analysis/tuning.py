"""A variant's tuned value: the optimum of its grid, the edge rule, and its learning-rate sensitivity.

Pure: plain numbers in, a ``Tuning`` out, so the runner (which grid point to train next, which one the
verdict seeds run at) and the report read the same decision.

- **Loss of a grid point**: each tuning seed's final validation loss, capped at the loss at init
  (``ln(vocab)``, what a freshly initialised model scores); a diverged run counts as that cap. The point's
  loss is the mean over its tuning seeds.
- **Optimum**: the lowest-loss point that never diverged; then the minimum of the quadratic in
  ``log(value)`` through it and its two neighbours (``fitted``). Where the fit is ill-posed (the point is
  on the grid's edge, or the three are collinear) ``fitted`` is that point. ``best`` is the grid point
  nearest ``fitted`` in log space that never diverged: the verdict seeds run there.
- **Edge rule**: an optimum on the edge of the grid run so far asks for the next extension point on that
  side (declared ahead: ``tune.extend`` per side); once those are spent it is flagged ``edge``, never
  reported as interior.
- **Transfer** (``tune: {at: smallest}``): a larger size runs no grid of its own; its tuning is its smallest
  size's, with ``best_group`` its own run group at that value and ``transferred_from`` that size's cell.
- **Sensitivity** (Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer training
  instabilities"): the mean over the grid run of ``min(loss, loss at init) - best loss``, in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

LOW, HIGH = "low", "high"


@dataclass(frozen=True)
class Point:
    """One grid point of a variant: its run group, ``step`` (0 on the configured grid, -k/+k the k-th
    extension below/above), and per tuning seed the final val loss (None: not finished) and divergence."""

    value: float
    group: str
    step: int
    losses: tuple[float | None, ...]  # per tuning seed: the final val loss, or None when not finished
    diverged: tuple[bool, ...]  # per tuning seed
    failed: bool = False  # a tuning seed's run failed (an exception, not a divergence): no loss

    def finished(self) -> bool:
        return not self.failed and all(d or loss is not None for loss, d in zip(self.losses, self.diverged))

    def capped(self, init: float) -> list[float]:
        """Per tuning seed, the loss as the tuning counts it: min(loss, init); init for a diverged run."""
        return [init if d or loss is None else min(loss, init) for loss, d in zip(self.losses, self.diverged)]

    def loss(self, init: float) -> float:
        return float(np.mean(self.capped(init)))


@dataclass(frozen=True)
class Tuning:
    """The tuning of one variant (at one size): the grid run, its optimum, its sensitivity, and whether it
    is complete (every point it needs has finished) or which group the runner trains next."""

    name: str  # the variant (``arch`` or ``arch@size``)
    key: str  # the tuned key, e.g. train.lr
    init_loss: float
    points: list[Point]  # the grid run so far (finished points), by value
    best: float | None = None  # the grid value the verdict seeds run at
    best_group: str | None = None
    best_loss: float | None = None
    fitted: float | None = None  # the quadratic's minimum in log(value), or the best point when ill-posed
    fitted_loss: float | None = None  # the quadratic's value there; None when ill-posed
    sensitivity: float | None = None
    edge: str | None = None  # "low" / "high": the optimum is on that edge of the grid run
    complete: bool = False
    pending: list[str] = field(default_factory=list)  # groups to train (all tuning seeds) before it is complete
    failed: list[float] = field(default_factory=list)  # values whose tuning run failed: left out of the grid
    note: str = ""  # why there is no optimum, when there is none
    transferred_from: str | None = None  # the cell whose optimum this one trains at (tune.at: smallest); None: tuned here

    @property
    def grid(self) -> list[float]:
        return [p.value for p in self.points]

    def as_json(self) -> dict:
        """results.json ``tuning`` of the variant's chosen run group."""
        return {"key": self.key, "grid": self.grid, "loss": [p.loss(self.init_loss) for p in self.points],
                "diverged": [any(p.diverged) for p in self.points], "best": self.best, "fitted": self.fitted,
                "best_loss": self.best_loss, "fitted_loss": self.fitted_loss, "sensitivity": self.sensitivity,
                "edge": self.edge, "loss_at_init": self.init_loss, "groups": [p.group for p in self.points],
                "failed": self.failed, "note": self.note or None, "transferred_from": self.transferred_from,
                "origin": f"transferred from {self.transferred_from}" if self.transferred_from else "tuned here"}


def init_loss(vocab_size: int) -> float:
    """The loss at init the tuning caps every run at: a uniform prediction over the vocabulary."""
    return math.log(vocab_size)


def tune(name: str, key: str, declared: Sequence[Point], init: float) -> Tuning:
    """The tuning of ``name`` from every point its experiment declares (the configured grid, step 0, and the
    extensions, steps -1, -2, ... and +1, +2, ...), taking extensions one at a time while the optimum sits
    on that edge of the grid run."""
    declared = sorted(declared, key=lambda p: p.value)
    low = high = 0
    while True:
        considered = [p for p in declared if -low <= p.step <= high]
        waiting = [p.group for p in considered if not p.finished() and not p.failed]
        if waiting:
            return Tuning(name, key, init, [p for p in considered if p.finished()], pending=waiting)
        result = _optimum(name, key, considered, init)
        if result.edge == LOW and any(p.step == -(low + 1) for p in declared) and _outermost(considered, result, LOW):
            low += 1
        elif result.edge == HIGH and any(p.step == high + 1 for p in declared) and _outermost(considered, result, HIGH):
            high += 1
        else:
            return result


def transferred(source: Tuning, cell: str, groups: dict[float, str]) -> Tuning:
    """The tuning of ``cell``, which trains at ``source``'s optimum: ``groups`` maps each value of its transfer
    points to its run group. Complete when ``source`` is; no grid, loss or sensitivity of its own."""
    best = next((g for v, g in groups.items() if source.best is not None and math.isclose(v, source.best, rel_tol=1e-9)), None)
    note = ("" if not source.complete or best else f"{source.name}: {source.note}" if source.best is None
            else f"no run group at {source.name}'s optimum {source.best:g}")
    return Tuning(cell, source.key, source.init_loss, [], best=source.best if best else None, best_group=best,
                  fitted=source.fitted if best else None, edge=source.edge if best else None, complete=source.complete,
                  note=note, transferred_from=source.name)


def _outermost(considered: list[Point], result: Tuning, side: str) -> bool:
    """The best point is the outermost declared point on ``side`` (not merely next to a failed one)."""
    edge = considered[0] if side == LOW else considered[-1]
    return edge.value == result.best


def _optimum(name: str, key: str, considered: list[Point], init: float) -> Tuning:
    points = [p for p in considered if p.finished()]
    failed = [p.value for p in considered if p.failed]
    if not points:
        return Tuning(name, key, init, [], complete=True, failed=failed, note="no grid point finished")
    losses = np.array([p.loss(init) for p in points])
    sensitivity = float(np.mean(losses - losses.min()))
    eligible = [i for i, p in enumerate(points) if not any(p.diverged)]
    if not eligible:
        return Tuning(name, key, init, points, sensitivity=sensitivity, complete=True, failed=failed,
                      note="every grid point diverged")
    i = min(eligible, key=lambda j: losses[j])
    x = np.log([p.value for p in points])
    vertex, fitted_loss = _vertex(x, losses, i)
    chosen = i if vertex is None else min(eligible, key=lambda j: (abs(x[j] - vertex), losses[j]))
    edge = LOW if chosen == 0 else HIGH if chosen == len(points) - 1 else None
    return Tuning(name, key, init, points, best=points[chosen].value, best_group=points[chosen].group,
                  best_loss=float(losses[chosen]), fitted=points[i].value if vertex is None else math.exp(vertex),
                  fitted_loss=fitted_loss,
                  sensitivity=sensitivity, edge=edge, complete=True, failed=failed)


def _vertex(x: np.ndarray, y: np.ndarray, i: int) -> tuple[float | None, float | None]:
    """(log value, loss) at the minimum of the parabola through points i-1, i, i+1; (None, None) when
    point i is on the edge or the parabola is not convex."""
    if i == 0 or i == len(x) - 1:
        return None, None
    a, b, c = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    if not a > 1e-12 * max(1.0, abs(b), abs(c)):
        return None, None
    vertex = -b / (2 * a)
    return float(vertex), float(c - b * b / (4 * a))


def seed_sensitivities(points: Sequence[Point], init: float, values: Sequence[float]) -> list[float]:
    """Per tuning seed, the sensitivity over the points whose value is in ``values``."""
    chosen = [p for p in points if any(math.isclose(p.value, v, rel_tol=1e-9) for v in values)]
    if not chosen:
        return []
    per_seed = np.array([p.capped(init) for p in chosen])  # points x seeds
    return list(np.mean(per_seed - per_seed.min(axis=0), axis=0))


@dataclass(frozen=True)
class SensitivityDifference:
    """Variant minus baseline sensitivity, paired by tuning seed over the grid values both ran: mean and a
    two-sided 95% t interval (None with fewer than two seeds: one seed cannot bound it)."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    values: list[float]


def sensitivity_difference(variant: Tuning, baseline: Tuning) -> SensitivityDifference | None:
    """None unless both tunings ran >= 2 seeds at >= 2 common grid values."""
    common = [v for v in variant.grid if any(math.isclose(v, b, rel_tol=1e-9) for b in baseline.grid)]
    if len(common) < 2:
        return None
    ours = seed_sensitivities(variant.points, variant.init_loss, common)
    theirs = seed_sensitivities(baseline.points, baseline.init_loss, common)
    n = min(len(ours), len(theirs))
    if n < 2:
        return None
    d = np.array(ours[:n]) - np.array(theirs[:n])
    mean, half = float(d.mean()), float(scipy_stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return SensitivityDifference(n, mean, mean - half, mean + half, common)
