"""Compute multipliers (workbench/reports/analysis/multipliers.py) against curves whose answer is known exactly, and
their combination across seeds against scipy's t-interval on logs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from workbench.reports.analysis.multipliers import combine_multipliers, compute_multiplier


def power_law(f):
    return 2.0 + 10.0 * np.asarray(f, dtype=float) ** -0.3


CURVE = [(float(f), float(power_law(f))) for f in np.logspace(10, 14, 41)]


@pytest.mark.parametrize("flops", [3e10, 1e11, 7.7e11, 2e13])
def test_multiplier_is_two_when_the_variant_matches_the_baseline_at_twice_its_flops(flops):
    value, extrapolated = compute_multiplier(CURVE, float(power_law(2 * flops)), flops)
    # Linear in log FLOPs between evals 0.1 decade apart: the chord of the convex curve lies above it, so it
    # reaches the loss a little late (+0.3% at most here).
    assert not extrapolated and 2.0 <= value < 2.0 * 1.005


def test_multiplier_uses_running_minimum_and_first_crossing():
    curve = [(1.0, 3.0), (2.0, 2.5), (4.0, 2.7), (8.0, 2.4), (16.0, 2.6), (32.0, 2.3)]
    # 2.6: first crossed between 1 (3.0) and 2 (2.5), 80% of the way: 2^0.8, not near 16 where it is crossed again.
    assert compute_multiplier(curve, 2.6, 1.0) == (pytest.approx(2**0.8), False)
    # 2.45: the running minimum is 2.5 at 4 (the noisy 2.7 ignored), 2.4 at 8: halfway in log FLOPs.
    assert compute_multiplier(curve, 2.45, 1.0) == (pytest.approx(4 * 2**0.5), False)
    assert compute_multiplier(curve, 2.5, 2.0) == (pytest.approx(1.0), False)  # exactly on an eval
    assert compute_multiplier(list(reversed(curve)), 2.45, 1.0)[0] == pytest.approx(4 * 2**0.5)  # order-free


def test_multiplier_extrapolation_is_flagged_and_conservative():
    last_f = CURVE[-1][0]
    for beyond in [2, 10]:  # the variant reaches what the baseline would at 2x, 10x its last eval
        value, extrapolated = compute_multiplier(CURVE, float(power_law(beyond * last_f)), 1e13)
        assert extrapolated and last_f / 1e13 < value <= beyond * last_f / 1e13 and value > 0.2 * beyond * last_f / 1e13
    first_f = CURVE[0][0]
    value, extrapolated = compute_multiplier(CURVE, float(power_law(first_f / 4)), 1e10)
    assert extrapolated and value < first_f / 1e10
    assert compute_multiplier([(1.0, 3.0), (2.0, 3.0), (4.0, 3.1)], 2.0, 1.0) == (None, True)  # flat: no fit
    assert compute_multiplier([], 2.0, 1.0) == (None, False)
    assert compute_multiplier(CURVE, float("nan"), 1.0) == (None, False)


def test_combine_multipliers_is_a_t_interval_on_logs():
    values = [1.8, 2.1, 2.4, 1.9]
    r = combine_multipliers(values + [None], [False, False, True, False, False])
    logs = np.log(values)
    low, high = sps.t.interval(0.95, 3, loc=logs.mean(), scale=sps.sem(logs))
    assert r.mean == pytest.approx(math.exp(logs.mean())) and r.extrapolated and r.per_seed == values
    assert (r.low, r.high) == (pytest.approx(math.exp(low)), pytest.approx(math.exp(high)))
    one = combine_multipliers([2.0], [False])
    assert (one.mean, one.low, one.high, one.extrapolated) == (2.0, None, None, False)
    assert combine_multipliers([None], [True]).mean is None
    with pytest.raises(ValueError):
        combine_multipliers([1.0], [])
