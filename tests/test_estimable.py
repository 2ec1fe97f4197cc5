"""What the data cannot bound (workbench/reports/analysis/estimable.py): one definition, used by the verdicts'
intervals, the compute multipliers and the report."""

from __future__ import annotations

import math

import pytest

from workbench.reports import fmt
from workbench.reports.analysis.estimable import (MIN_DF, RATIO_LIMIT, WIDTH_LIMIT, delta_estimable, not_estimable,
                                                  ratio_estimable)
from workbench.reports.analysis.multipliers import combine_multipliers
from workbench.reports.analysis.verdicts import decide


def test_not_estimable_is_defined_once():
    assert delta_estimable(-0.1, 0.1, 2, 0.02) and not delta_estimable(-0.1, 0.1, 1, 0.02)
    assert not delta_estimable(-0.11, 0.11, 12, 0.02) and 0.22 > WIDTH_LIMIT * 0.02  # wider than 10x the scale
    assert not delta_estimable(None, 0.1, 5, 1.0) and not delta_estimable(0.0, math.inf, 5, 1.0)
    assert ratio_estimable(0.5, 40.0, 2) and not ratio_estimable(0.5, 0.5 * RATIO_LIMIT * 1.01, 5)
    assert not ratio_estimable(1.0, 2.0, 1) and not ratio_estimable(0.0, 1.0, 3)
    # A multiplier from two seeds (1 df) never has an interval; from three, only if it spans at most 100x.
    assert not combine_multipliers([6.0, 7.0], [False, False]).estimable
    assert combine_multipliers([6.0, 7.0, 6.5], [False] * 3).estimable
    wild = combine_multipliers([0.01, 50.0, 3.0], [False] * 3)
    assert not wild.estimable and wild.low is None and wild.mean == pytest.approx((0.01 * 50 * 3) ** (1 / 3))


def test_the_report_prints_the_point_estimate_and_why():
    # Two seeds whose spread leaves a 1-df interval of +-17 around +0.4 (the ladder's d128 SwiGLU rung once printed
    # [-17.120, +17.920]): never digits, the point estimate and n.
    v = decide({"swiglu": [0.011, 0.789]})["swiglu"]
    assert v.df == 1 and not v.estimable and v.low is None
    assert fmt.delta(v) == "+0.4000 (not estimable at n = 2)" and not_estimable(2) == "not estimable at n = 2"
    # With 3 seeds (2 df) and a spread the experiment's scale covers, the interval is given.
    three = decide({"v": [0.39, 0.41, 0.40]})["v"]
    assert three.df == MIN_DF and three.estimable and fmt.delta(three).startswith("+0.4000 [+0.2959, +0.5041] at ")
    # An interval wider than 10x the experiment's largest |Δ| is not given, even on enough df.
    wide = decide({"v": [0.05, -0.04, 0.02]}, scale=0.001)["v"]
    assert not wide.estimable and fmt.delta(wide) == "+0.0100 (not estimable at n = 3)"
    # A multiplier from two seeds (6.48x [0.00, 76783.92] once): the geometric mean, not estimable at n = 2.
    m = combine_multipliers([0.05, 840.0], [False, True])
    assert fmt.multiplier(m) == f"{m.mean:.2f}x (not estimable at n = 2) (extrapolated)"

