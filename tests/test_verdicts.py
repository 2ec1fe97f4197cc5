"""Verdicts (workbench/reports/analysis/verdicts.py) against scipy references, hand-computed Holm, and Monte-Carlo runs of
the sequential runner loop (vectorised with decide_batch, fixed RNG seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from workbench.reports.analysis.verdicts import (BETTER, DEFAULT_MARGIN, EQUIVALENT, UNDECIDED, WORSE, SeedPolicy,
                                                 decide, decide_batch, method_text, seeds_needed)

ALPHA = 0.05


def mc_bound(p: float, reps: int) -> float:
    """p + 3 Monte-Carlo standard errors."""
    return p + 3.0 * math.sqrt(p * (1.0 - p) / reps)


def runner(d: np.ndarray, policy: SeedPolicy = SeedPolicy(), margin: float = DEFAULT_MARGIN):
    """The runner loop: start at min seeds, add one seed to each undecided comparison, stop at max.
    d: (reps, m, policy.max) differences. Returns final verdicts (reps, m) and seeds used (reps, m)."""
    lengths = np.full(d.shape[:-1], policy.min)
    while True:
        v = decide_batch(d, margin, policy, lengths)
        grow = (v == UNDECIDED) & (lengths < policy.max)
        if not grow.any():
            return v, lengths
        lengths = lengths + grow


def normal_diffs(rng, reps: int, mean: float, std: float, m: int = 1, seeds: int = 8) -> np.ndarray:
    return mean + std * rng.standard_normal((reps, m, seeds))


def exact(mean: float, std: float, n: int) -> list[float]:
    """n values with exactly this sample mean and sample std."""
    z = np.linspace(-1.0, 1.0, n)
    return list(mean + std * (z - z.mean()) / z.std(ddof=1))


# ---------------------------------------------------------------- spending

def test_look_alpha_spends_alpha_across_the_looks():
    p = SeedPolicy(2, 8, 0.05)
    shares = [p.look_alpha(n) for n in range(2, 9)]
    assert sum(shares) == pytest.approx(0.05, abs=1e-15)
    # rho = 2: the k-th of K looks gets alpha (2k - 1) / K^2.
    assert shares == pytest.approx([0.05 * (2 * k - 1) / 49 for k in range(1, 8)], rel=1e-12)
    assert p.look_alpha(1) == p.look_alpha(9) == 0.0
    assert SeedPolicy(3, 3, 0.05).look_alpha(3) == pytest.approx(0.05)  # a fixed seed list: one look, all of alpha
    for bad in [dict(min=0), dict(min=5, max=4), dict(alpha=0.0), dict(alpha=1.0), dict(rho=0.0)]:
        with pytest.raises(ValueError):
            SeedPolicy(**bad)


# ---------------------------------------------------------------- single look against scipy

SINGLE = SeedPolicy(5, 5, ALPHA)
CASES = {
    "clearly better": [-0.051, -0.062, -0.048, -0.055, -0.043],
    "clearly worse": [0.031, 0.044, 0.029, 0.036, 0.041],
    "noise": [0.012, -0.018, 0.004, 0.020, -0.009],
    "tight around zero": [0.0011, -0.0008, 0.0003, -0.0012, 0.0005],
    "tiny but significant": [-0.0050, -0.0052, -0.0049, -0.0051, -0.0048],
    "borderline": [-0.010, -0.055, -0.030, -0.042, -0.020],
}


def scipy_reference(d, margin):
    """m = 1, one look at alpha: two-sided t-test for the sign, TOST (two one-sided tests) for equivalence."""
    d = np.asarray(d)
    two_sided = sps.ttest_1samp(d, 0.0).pvalue
    tost = max(sps.ttest_1samp(d, margin, alternative="less").pvalue,
               sps.ttest_1samp(d, -margin, alternative="greater").pvalue)
    if tost <= ALPHA:
        return EQUIVALENT
    if two_sided <= ALPHA:
        return BETTER if d.mean() < 0 else WORSE
    return UNDECIDED


@pytest.mark.parametrize("name", list(CASES))
def test_single_look_matches_scipy_t_and_tost(name):
    d = CASES[name]
    v = decide({name: d}, policy=SINGLE)[name]
    assert v.verdict == scipy_reference(d, DEFAULT_MARGIN)
    low, high = sps.t.interval(1 - ALPHA, len(d) - 1, loc=np.mean(d), scale=sps.sem(d))
    assert (v.low, v.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert v.level == pytest.approx(0.95)
    assert v.n == 5 and v.diff_std == pytest.approx(np.std(d, ddof=1), abs=1e-15) and v.margin == DEFAULT_MARGIN


def test_single_look_cases_cover_every_verdict():
    got = {name: decide({name: d}, policy=SINGLE)[name].verdict for name, d in CASES.items()}
    assert got["clearly better"] == BETTER and got["clearly worse"] == WORSE and got["noise"] == UNDECIDED
    assert got["tight around zero"] == EQUIVALENT
    # Significantly below 0 and within the margin: equivalent wins (too small to matter).
    assert sps.ttest_1samp(CASES["tiny but significant"], 0.0).pvalue < 1e-5
    assert got["tiny but significant"] == EQUIVALENT
    # Borderline: better with 5 fixed seeds (p = 0.017); with the default sequential policy the same 5 seeds are
    # undecided, the price of being allowed to stop early (look 5 spends 0.0071).
    assert 0.01 < sps.ttest_1samp(CASES["borderline"], 0.0).pvalue < ALPHA and got["borderline"] == BETTER
    assert decide({"b": CASES["borderline"]})["b"].verdict == UNDECIDED


def test_holm_over_three_comparisons_by_hand():
    # One look at alpha = 0.05 with 5 seeds; means chosen so the one-sided p-values straddle Holm's thresholds.
    s, n = 0.05, 5
    diffs = {name: exact(-t * s / math.sqrt(n), s, n) for name, t in [("a", 8.0), ("b", 3.85), ("c", 3.2)]}
    p = {name: sps.ttest_1samp(d, 0.0, alternative="less").pvalue for name, d in diffs.items()}
    # 2m = 6 one-sided nulls (both signs); the three 'worse' ones have p > 0.97 and rank last.
    assert p["a"] <= 0.05 / 6                      # step 1: reject (a better)
    assert 0.05 / 6 < p["b"] <= 0.05 / 5           # step 2: reject (b better); Bonferroni would not
    assert p["c"] > 0.05 / 4                       # step 3: stop (c undecided), though p_c < 0.05
    r = decide(diffs, policy=SeedPolicy(5, 5))
    assert [r[k].verdict for k in "abc"] == [BETTER, BETTER, UNDECIDED]
    # The interval is Bonferroni over m = 3 at this look (it can lag Holm: b's still covers 0).
    low, high = sps.t.interval(1 - 0.05 / 3, n - 1, loc=np.mean(diffs["b"]), scale=sps.sem(diffs["b"]))
    assert (r["b"].low, r["b"].high) == (pytest.approx(low), pytest.approx(high)) and high > 0
    # Alone, c is better: the correction is what holds it back.
    assert decide({"c": diffs["c"]}, policy=SeedPolicy(5, 5))["c"].verdict == BETTER


# ---------------------------------------------------------------- decide's bookkeeping

def test_missing_seeds_count_as_run_and_too_many_seeds_is_an_error():
    r = decide({"x": [0.02, None, float("nan"), 0.03, 0.01]})["x"]
    assert r.n == 3 and r.mean == pytest.approx(0.02) and r.diff_std == pytest.approx(0.01)
    # Looks are by seeds run (5 here): the interval uses look 5's alpha with 3 finite values.
    half = sps.t.ppf(1 - SeedPolicy().look_alpha(5) / 2, 2) * 0.01 / math.sqrt(3)
    assert r.low == pytest.approx(0.02 - half) and r.level == pytest.approx(1 - SeedPolicy().look_alpha(5))
    with pytest.raises(ValueError):
        decide({"x": [0.0] * 9})
    assert decide({}) == {}


def test_small_n_and_zero_std():
    r = decide({"one": [0.05], "zeros": [0.0, 0.0, 0.0], "step": [-0.2, -0.2, -0.2], "flat": [0.003, 0.003, 0.003]})
    assert r["one"].verdict == UNDECIDED and r["one"].low is None and r["one"].diff_std is None
    assert r["one"].seeds_needed is None and r["one"].df == 0 and not r["one"].estimable
    assert r["zeros"].verdict == EQUIVALENT and r["zeros"].diff_std == 0.0 and r["zeros"].seeds_needed is None
    assert r["step"].verdict == BETTER and r["flat"].verdict == EQUIVALENT
    # Fewer seeds than the first look: no test yet, no interval.
    r = decide({"x": [0.1, 0.2]}, policy=SeedPolicy(3, 6))["x"]
    assert r.verdict == UNDECIDED and r.low is None
    assert r.seeds_needed is None  # from a variance on 1 df, the seeds a decision needs are not estimable either


def test_no_verdict_from_one_degree_of_freedom():
    # Two paired seeds alone give a variance on 1 df: whatever the numbers, nothing is decided and no interval is
    # given, even for a difference with no spread at all (which 3 seeds decide).
    r = decide({"zeros": [0.0, 0.0], "step": [-0.2, -0.2], "flat": [0.003, 0.003], "far": [-0.5, -0.51]},
               policy=SeedPolicy(2, 2))
    for name, v in r.items():
        assert v.verdict == UNDECIDED and v.df == 1 and v.variance == "cell" and v.low is None and not v.estimable
    assert all(v.seeds_needed is None for v in r.values())  # nor the seeds a decision needs, from 1 df
    # The runner loop on two seeds alone, over many replicates and effects: never a decision.
    rng = np.random.default_rng(12)
    d = np.concatenate([normal_diffs(rng, 2000, mean, 0.02, seeds=2) for mean in (0.0, 0.005, -0.1, 0.5)])
    assert np.all(decide_batch(d, DEFAULT_MARGIN, SeedPolicy(2, 2)) == UNDECIDED)
    assert np.all(decide_batch(np.zeros((10, 1, 2)), DEFAULT_MARGIN, SeedPolicy(2, 2)) == UNDECIDED)
    # Given a variance on 2 df (pooled from elsewhere), the same two seeds decide; on 1 df they do not.
    var, df, alone = np.full((1, 1, 2), 0.02 ** 2), np.full((1, 1, 2), 2), np.zeros((1, 1, 2), dtype=bool)
    far = np.array([[[-0.5, -0.51]]])
    assert decide_batch(far, DEFAULT_MARGIN, SeedPolicy(2, 2), None, var, df, alone)[0, 0] == BETTER
    assert decide_batch(far, DEFAULT_MARGIN, SeedPolicy(2, 2), None, var, df - 1, alone)[0, 0] == UNDECIDED


def test_decisions_are_never_taken_back_as_seeds_are_added():
    rng = np.random.default_rng(11)
    d = normal_diffs(rng, 3000, 0.01, 0.01, m=2)
    policy = SeedPolicy()
    before = decide_batch(d, DEFAULT_MARGIN, policy, np.full((3000, 2), 2))
    for r in range(3, 9):
        now = decide_batch(d, DEFAULT_MARGIN, policy, np.full((3000, 2), r))
        assert not np.any((before != UNDECIDED) & (now == UNDECIDED))
        assert not np.any((before == BETTER) & (now == WORSE)) and not np.any((before == WORSE) & (now == BETTER))
        before = now


def test_identical_functions_are_equivalent_at_three_seeds():
    # Their own variance needs 2 df: the third seed decides, every time.
    rng = np.random.default_rng(1)
    v, n = runner(normal_diffs(rng, 4000, 0.0, 1e-7))
    assert np.all(v == EQUIVALENT) and np.all(n == 3)
    assert decide({"same": [3e-8, -1.1e-7]})["same"].verdict == UNDECIDED
    r = decide({"same": [3e-8, -1.1e-7, 0.4e-7]})["same"]
    assert r.verdict == EQUIVALENT and r.high < DEFAULT_MARGIN


def test_large_effect_is_better_within_four_seeds():
    # -0.18 with std 0.02 (9 std): decided better at 3 seeds (~51%) or 4 (~47%), at 2 only ~2%.
    rng = np.random.default_rng(2)
    v, n = runner(normal_diffs(rng, 4000, -0.18, 0.02))
    assert np.all(v == BETTER) and np.mean(n <= 4) > 0.99 and 3.2 < n.mean() < 3.7
    diffs = [-0.185, -0.172, -0.190, -0.176]
    assert decide({"x": diffs[:2]})["x"].verdict == UNDECIDED
    assert decide({"x": diffs[:3]})["x"].verdict == BETTER


# ---------------------------------------------------------------- Monte-Carlo error rates of the runner loop

@pytest.mark.parametrize("std", [0.01, 0.02, 0.05])
def test_null_false_better_or_worse_under_optional_stopping(std):
    reps = 6000
    v, _ = runner(normal_diffs(np.random.default_rng(3), reps, 0.0, std))
    false = np.mean((v == BETTER) | (v == WORSE))
    assert false <= mc_bound(ALPHA, reps)
    # Looking 7 times at the full alpha each would not hold the rate: the spending is what does.
    naive = np.zeros(reps, dtype=bool)
    rng_d = normal_diffs(np.random.default_rng(3), reps, 0.0, std)[:, 0]
    for n in range(2, 9):
        naive |= sps.ttest_1samp(rng_d[:, :n], 0.0, axis=1).pvalue <= ALPHA
    assert naive.mean() > mc_bound(ALPHA, reps)


def test_null_family_wise_error_with_three_comparisons_sharing_a_baseline():
    reps, rng = 6000, np.random.default_rng(4)
    base = rng.standard_normal((reps, 1, 8))
    d = 0.02 * (rng.standard_normal((reps, 3, 8)) - base) / math.sqrt(2)  # correlation 0.5 through the baseline
    v, _ = runner(d)
    assert np.mean(((v == BETTER) | (v == WORSE)).any(axis=1)) <= mc_bound(ALPHA, reps)


def test_wrong_sign_is_rare_and_power_at_one_and_a_half_std():
    reps = 6000
    v, n = runner(normal_diffs(np.random.default_rng(5), reps, 0.03, 0.02))  # worse by 1.5 std
    assert np.mean(v == WORSE) > 0.78  # measured 0.82 (a fixed 8 seeds at 5%: 0.95, at 8 seeds every time)
    assert np.mean(v == BETTER) <= mc_bound(ALPHA / 2, reps) and n.mean() < 6.8


@pytest.mark.parametrize("mean, std", [(DEFAULT_MARGIN, 0.005), (DEFAULT_MARGIN, 0.01), (-DEFAULT_MARGIN, 0.01),
                                       (DEFAULT_MARGIN, 0.02)])
def test_false_equivalence_at_the_margin(mean, std):
    reps = 6000
    v, _ = runner(normal_diffs(np.random.default_rng(6), reps, mean, std))
    assert np.mean(v == EQUIVALENT) <= mc_bound(ALPHA, reps)


def test_true_equivalence_is_found():
    v, n = runner(normal_diffs(np.random.default_rng(7), 6000, 0.0, 0.0025))
    assert np.mean(v == EQUIVALENT) > 0.99 and n.mean() < 4.5  # measured 1.000 at 4.0 seeds


# ---------------------------------------------------------------- seeds needed

def simulated_power(mean, std, n, one_sided_alpha, equivalence, reps=40000, seed=8):
    x = mean + std * np.random.default_rng(seed).standard_normal((reps, n))
    m, se = x.mean(axis=1), x.std(axis=1, ddof=1) / math.sqrt(n)
    crit = sps.t.ppf(1 - one_sided_alpha, n - 1)
    if equivalence:
        return np.mean(((m - DEFAULT_MARGIN) / se < -crit) & ((m + DEFAULT_MARGIN) / se > crit))
    return np.mean(np.abs(m) / se > crit)


@pytest.mark.parametrize("mean, std", [(0.03, 0.02), (-0.05, 0.02), (0.015, 0.01)])
def test_seeds_needed_gives_eighty_percent_power_to_the_difference_test(mean, std):
    r = decide({"x": exact(mean, std, 3)})["x"]
    assert r.verdict == UNDECIDED and r.seeds_needed == seeds_needed(mean, std, 3)
    big_n = r.seeds_needed

    def alpha_at(n):  # one-sided: look alpha over 2m = 2; past max, the last look of a plan with max = n
        return SeedPolicy(2, max(8, n)).look_alpha(n) / 2

    assert simulated_power(mean, std, big_n, alpha_at(big_n), False) >= 0.79
    if big_n - 1 > 3:
        assert simulated_power(mean, std, big_n - 1, alpha_at(big_n - 1), False) < 0.81
    # The closed-form t approximation: the least n with n >= ((t_{1-a, n-1} + t_{0.8, n-1}) std / mean)^2.
    approx = next(n for n in range(4, 1000)
                  if n >= ((sps.t.isf(alpha_at(n), n - 1) + sps.t.isf(0.2, n - 1)) * std / mean) ** 2)
    assert abs(big_n - approx) <= 1


def test_seeds_needed_for_equivalence():
    r = decide({"x": exact(0.0, 0.01, 3)})["x"]
    assert r.verdict == UNDECIDED and r.seeds_needed is not None
    n = r.seeds_needed
    a = SeedPolicy(2, max(8, n)).look_alpha(n)  # TOST family of m = 1
    assert simulated_power(0.0, 0.01, n, a, True) >= 0.79
    assert simulated_power(0.0, 0.01, n - 2, SeedPolicy(2, max(8, n - 2)).look_alpha(n - 2), True) < 0.8
    assert seeds_needed(0.0, 0.0, 3) is None and seeds_needed(0.01, 0.01, 1) is None


def test_seeds_needed_for_a_fixed_seed_list_is_a_longer_fixed_list():
    r = decide({"x": [0.03, 0.01, 0.05]}, policy=SeedPolicy(3, 3))["x"]  # mean 0.03, std 0.02
    n = r.seeds_needed
    assert r.verdict == UNDECIDED and n is not None
    assert simulated_power(0.03, 0.02, n, ALPHA / 2, False) >= 0.79  # all of alpha, two signs
    assert simulated_power(0.03, 0.02, n - 1, ALPHA / 2, False) < 0.81


def test_sequential_runner_decides_by_seeds_needed():
    # Inside the plan: the whole procedure (all looks, Holm) decides by then at least 80% of the time.
    mean, std = -0.04, 0.02
    n = seeds_needed(mean, std, 2)
    assert n is not None and 2 < n <= 8
    v, used = runner(normal_diffs(np.random.default_rng(9), 4000, mean, std))
    assert np.mean((v == BETTER) & (used <= n)) >= 0.8


# ---------------------------------------------------------------- method statement

def test_method_text_states_the_method():
    text = method_text(0.01, SeedPolicy(), 3)
    for part in ["paired", "Holm", "3 comparisons", "±0.01 nats", "2 up to 8", "at most 5%", "equivalent",
                 "pooled across the sizes", "20% of the error rate", "fewer than 2 degrees of freedom"]:
        assert part in text
    single = method_text(0.02, SeedPolicy(4, 4), 1)
    assert "4 seeds and is tested once" in single and "Holm" not in single and "±0.02" in single
