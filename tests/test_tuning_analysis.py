"""The tuning decision (reports/analysis/tuning.py) against independent computations: the quadratic's vertex
from the closed form in exact fractions, Wortsman's sensitivity by hand, the edge rule step by step."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from workbench.reports.analysis.tuning import HIGH, LOW, Point, sensitivity_difference, tune

INIT = math.log(512)


def point(value, loss, step=0, diverged=False, seeds=1):
    losses = loss if isinstance(loss, (list, tuple)) else [loss] * seeds
    flags = diverged if isinstance(diverged, (list, tuple)) else [diverged] * len(losses)
    return Point(value, f"v@lr={value:g}", step, tuple(None if d else x for x, d in zip(losses, flags)), tuple(flags))


def vertex_exact(xs, ys):
    """The minimum of the parabola through three points, in exact rational arithmetic (Lagrange form)."""
    (x0, x1, x2), (y0, y1, y2) = [Fraction(x) for x in xs], [Fraction(y) for y in ys]
    a = y0 / ((x0 - x1) * (x0 - x2)) + y1 / ((x1 - x0) * (x1 - x2)) + y2 / ((x2 - x0) * (x2 - x1))
    b = -(y0 * (x1 + x2) / ((x0 - x1) * (x0 - x2)) + y1 * (x0 + x2) / ((x1 - x0) * (x1 - x2))
          + y2 * (x0 + x1) / ((x2 - x0) * (x2 - x1)))
    return float(-b / (2 * a))


@pytest.mark.parametrize("trial", range(20))
def test_fitted_optimum_is_the_vertex_in_log_value_through_the_best_and_its_neighbours(trial):
    rng = random.Random(trial)
    values = sorted(rng.uniform(1e-4, 1e-1) for _ in range(rng.randint(3, 7)))
    values = [v * (1 + i) for i, v in enumerate(values)]  # distinct
    optimum = math.exp(rng.uniform(math.log(values[1]), math.log(values[-2])))
    losses = [4.0 + 0.3 * (math.log(v) - math.log(optimum)) ** 2 + rng.uniform(0, 0.01) for v in values]
    result = tune("v", "train.lr", [point(v, y) for v, y in zip(values, losses)], INIT)
    i = int(np.argmin(losses))
    if 0 < i < len(values) - 1:
        xs = [math.log(values[j]) for j in (i - 1, i, i + 1)]
        expected = math.exp(vertex_exact(xs, [min(losses[j], INIT) for j in (i - 1, i, i + 1)]))  # capped at init
        assert result.fitted == pytest.approx(expected, rel=1e-9)
        nearest = min(values, key=lambda v: abs(math.log(v) - math.log(expected)))
        assert result.best == nearest and result.edge is None
    assert result.complete and result.best_group == f"v@lr={result.best:g}"


def test_sensitivity_is_the_mean_gap_to_the_best_loss_with_losses_capped_at_init():
    values, losses = [1e-3, 3e-3, 1e-2, 3e-2], [4.5, 4.2, 4.4, 11.0]  # 11 > ln(512): capped
    result = tune("v", "train.lr", [point(v, y) for v, y in zip(values, losses)], INIT)
    capped = [min(y, INIT) for y in losses]
    assert result.sensitivity == pytest.approx(sum(c - min(capped) for c in capped) / len(capped), rel=1e-12)


def test_a_diverged_top_of_the_grid_is_never_chosen_and_its_sensitivity_stays_finite():
    # the diverged point has no loss at all; even the fit's neighbour rule must not pick it
    points = [point(1e-3, 4.40), point(3e-3, 4.21), point(1e-2, 4.20), point(3e-2, None, diverged=True)]
    result = tune("v", "train.lr", points, INIT)
    assert result.best != 3e-2 and result.best in (3e-3, 1e-2)
    assert math.isfinite(result.sensitivity)
    assert result.as_json()["diverged"] == [False, False, False, True]
    assert result.as_json()["loss"][-1] == pytest.approx(INIT)


def test_every_point_diverged_gives_no_optimum_and_says_why():
    result = tune("v", "train.lr", [point(v, None, diverged=True) for v in (1e-3, 1e-2, 1e-1)], INIT)
    assert result.best is None and result.complete and "diverged" in result.note
    assert result.sensitivity == 0.0


def test_an_optimum_on_the_edge_asks_for_the_next_extension_then_is_flagged_once_they_are_spent():
    grid = [point(v, 5.0 - i * 0.1) for i, v in enumerate((1e-3, 2e-3, 4e-3))]  # still falling at the top
    ext1, ext2 = Point(8e-3, "v@lr=0.008", 1, (None,), (False,)), Point(1.6e-2, "v@lr=0.016", 2, (None,), (False,))
    first = tune("v", "train.lr", grid + [ext1, ext2], INIT)
    assert not first.complete and first.pending == ["v@lr=0.008"] and first.best is None
    ext1 = point(8e-3, 4.65, step=1)
    second = tune("v", "train.lr", grid + [ext1, ext2], INIT)
    assert second.pending == ["v@lr=0.016"]
    ext2 = point(1.6e-2, 4.6, step=2)
    last = tune("v", "train.lr", grid + [ext1, ext2], INIT)
    assert last.complete and last.best == 1.6e-2 and last.edge == HIGH and last.fitted == 1.6e-2


def test_an_edge_optimum_without_extensions_is_flagged_never_interior():
    for losses, side in (([4.1, 4.3, 4.6], LOW), ([4.6, 4.3, 4.1], HIGH)):
        result = tune("v", "train.lr", [point(v, y) for v, y in zip((1e-3, 3e-3, 1e-2), losses)], INIT)
        assert result.edge == side and result.fitted_loss is None


def test_an_extension_that_turns_the_curve_makes_the_optimum_interior():
    grid = [point(v, y) for v, y in zip((1e-3, 3e-3, 1e-2), (4.6, 4.4, 4.3))]
    result = tune("v", "train.lr", grid + [point(3e-2, 4.5, step=1), Point(1e-1, "x", 2, (None,), (False,))], INIT)
    assert result.complete and result.edge is None and result.best == 1e-2 and 3e-3 < result.fitted < 3e-2


def test_a_failed_point_is_left_out_and_named():
    points = [point(1e-3, 4.5), Point(3e-3, "v@lr=0.003", 0, (None,), (False,), failed=True), point(1e-2, 4.4),
              point(3e-2, 4.6)]
    result = tune("v", "train.lr", points, INIT)
    assert result.complete and result.failed == [3e-3] and 3e-3 not in result.grid and result.best == 1e-2


def test_grid_point_loss_is_the_mean_over_tuning_seeds_and_one_diverged_seed_disqualifies_it():
    points = [point(1e-3, [4.5, 4.7]), point(3e-3, [4.2, 4.4]), point(1e-2, [4.0, None], diverged=[False, True])]
    result = tune("v", "train.lr", points, INIT)
    assert result.as_json()["loss"][:2] == pytest.approx([4.6, 4.3])
    assert result.as_json()["loss"][2] == pytest.approx((4.0 + INIT) / 2)
    assert result.best == 3e-3


def test_paired_sensitivity_difference_is_a_t_interval_over_tuning_seeds():
    values = (1e-3, 3e-3, 1e-2)
    ours = tune("a", "train.lr", [point(v, y) for v, y in zip(values, ([4.5, 4.6, 4.4], [4.2, 4.25, 4.3],
                                                                      [4.9, 5.3, 5.0]))], INIT)
    theirs = tune("b", "train.lr", [point(v, y) for v, y in zip(values, ([4.5, 4.5, 4.6], [4.3, 4.2, 4.25],
                                                                        [4.6, 4.5, 4.7]))], INIT)
    diff = sensitivity_difference(ours, theirs)
    per_seed = []
    for s in range(3):
        def sens(table):
            col = [row[s] for row in table]
            return sum(c - min(col) for c in col) / len(col)
        per_seed.append(sens([[4.5, 4.6, 4.4], [4.2, 4.25, 4.3], [4.9, 5.3, 5.0]])
                        - sens([[4.5, 4.5, 4.6], [4.3, 4.2, 4.25], [4.6, 4.5, 4.7]]))
    d = np.array(per_seed)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert diff.n == 3 and diff.mean == pytest.approx(d.mean()) and diff.low == pytest.approx(d.mean() - half)
    one_seed = tune("c", "train.lr", [point(v, 4.0) for v in values], INIT)
    assert sensitivity_difference(one_seed, one_seed) is None  # one seed cannot bound it
