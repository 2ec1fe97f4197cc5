"""Monte Carlo of the pooled-noise verdicts (workbench/reports/analysis/pooled.py, design.py) on the ladder's design:
3 sizes x 6 run groups (a first rung and 5 rungs, each compared with the rung before), the runner's loop (an
undecided comparison gets the next seed, with the rung it is compared with), fixed RNG seeds.

`python tests/test_pooled_mc.py` prints the tables of docs/verdicts.md with more replicates.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy import stats as sps

from workbench.reports.analysis.design import decide_design, design_noise
from workbench.reports.analysis.verdicts import BETTER, DEFAULT_MARGIN, EQUIVALENT, UNDECIDED, WORSE, SeedPolicy

ALPHA = 0.05
K, G = 3, 6  # sizes, run groups per size
SIZES = np.repeat(np.arange(K), G)
PAIRS = [(k * G + i, k * G + i - 1) for k in range(K) for i in range(1, G)]  # each rung against the one before
FAMILIES = [list(range(k * (G - 1), (k + 1) * (G - 1))) for k in range(K)]  # Holm: the rungs of one size
NOISE = 0.02  # residual std of one run's final loss; a paired difference has std NOISE * sqrt(2)
FIXED, SEQUENTIAL = SeedPolicy(2, 2), SeedPolicy(2, 4)


def mc_bound(p: float, reps: int) -> float:
    """p + 3 Monte-Carlo standard errors."""
    return p + 3.0 * math.sqrt(p * (1.0 - p) / reps)


def ladder(rng, reps: int, seeds: int, std: np.ndarray, effect: np.ndarray | None = None) -> np.ndarray:
    """Final losses (reps, K * G, seeds): group effect + a seed block per size + independent noise of std[g]."""
    block = np.repeat(rng.standard_normal((reps, K, 1, seeds)), G, axis=2).reshape(reps, K * G, seeds)
    a = np.zeros(K * G) if effect is None else effect
    return 3.0 + a[None, :, None] + 0.05 * block + std[None, :, None] * rng.standard_normal((reps, K * G, seeds))


def runner(y: np.ndarray, policy: SeedPolicy, pooled: bool = True, pairs=PAIRS, families=FAMILIES, sizes=SIZES,
           **levels):
    """The runner's rounds: every comparison starts at policy.min seeds; each round gives the undecided ones the
    next seed (and so their two run groups; a group has the seeds of its longest comparison), until policy.max.
    Returns the verdicts (reps, P) and the seeds each comparison ran."""
    reps = y.shape[0]
    lengths = np.full((reps, len(pairs)), policy.min)
    while True:
        have = np.zeros((reps, y.shape[1]), dtype=int)
        for j, (v, w) in enumerate(pairs):
            have[:, v] = np.maximum(have[:, v], lengths[:, j])
            have[:, w] = np.maximum(have[:, w], lengths[:, j])
        run = np.where(np.arange(y.shape[-1]) < have[..., None], y, np.nan)
        v = decide_design(run, lengths, sizes, pairs, families, DEFAULT_MARGIN, policy, pooled=pooled, **levels)
        grow = (v == UNDECIDED) & (lengths < policy.max)
        if not grow.any():
            return v, lengths
        lengths = lengths + grow


def family_error(v: np.ndarray, family: list[int]) -> float:
    """P(any better or worse in the family): under the null, every one is false."""
    return float(np.mean(((v[:, family] == BETTER) | (v[:, family] == WORSE)).any(axis=1)))


def noisier(ratio: float, where: str) -> np.ndarray:
    """Residual stds with the variance of size 2 (where="size") or of one run group of size 2 ("group") ratio x."""
    std = np.full(K * G, NOISE)
    std[SIZES == 2 if where == "size" else 2 * G + 3] *= math.sqrt(ratio)
    return std


def steps(effect_std: float) -> np.ndarray:
    """Each rung lower than the one before by effect_std standard deviations of a paired difference."""
    return np.tile(np.arange(G) * -effect_std * NOISE * math.sqrt(2), K)


# ---------------------------------------------------------------- the pooled t is exact

def test_the_pooled_t_is_exact():
    # Always pooled (no test leaves the pool): mean / sqrt(var / n) of every comparison is Student t on the pool's
    # 15 df under the model, because the paired mean is independent of the residuals it is scaled by; the seed
    # blocks cancel. Its two-sided p-values are uniform.
    reps = 4000
    y = ladder(np.random.default_rng(20), reps, 2, np.full(K * G, NOISE))
    var, df, src, _ = design_noise(y, SIZES, PAIRS, range(2, 3), across=0.0, within=0.0)
    assert np.all(df[..., 1] == 15) and np.all(src[..., 1] == 0)
    v, w = np.array(PAIRS).T
    t = (y[:, v] - y[:, w]).mean(axis=-1) / np.sqrt(var[..., 1] / 2)
    p = 2 * sps.t.sf(np.abs(t), 15)
    assert sps.kstest(p[:, 0], "uniform").pvalue > 0.01 and sps.kstest(p[:, 7], "uniform").pvalue > 0.01
    assert abs(np.mean(p <= ALPHA) - ALPHA) < 3.0 * math.sqrt(ALPHA * (1 - ALPHA) / reps)  # 15 dependent draws each


# ---------------------------------------------------------------- error rates under the null

@pytest.mark.parametrize("ratio", [1, 2, 4, 16])
def test_null_with_a_noisier_size_holds_alpha(ratio):
    # The third size's variance `ratio` x the others': pooled, it would be underestimated (at 2x: 0.12 false
    # better/worse in its family without the test); its F test against the other sizes sends it to its own model.
    reps = 4000
    v, _ = runner(ladder(np.random.default_rng(21), reps, 2, noisier(ratio, "size")), FIXED)
    assert family_error(v, FAMILIES[2]) <= ALPHA
    assert max(family_error(v, f) for f in FAMILIES[:2]) <= ALPHA


@pytest.mark.parametrize("ratio", [2, 4])
def test_null_with_a_noisier_run_group_holds_alpha_up_to_four_times_the_variance(ratio):
    # One run group's variance `ratio` x its neighbours': its two comparisons have a larger spread than the pool
    # says. Two seeds give that spread 1 df, so the F test sees it poorly; up to 4x the error stays within alpha
    # (docs/verdicts.md gives 8x and 16x, where it does not).
    reps = 4000
    v, _ = runner(ladder(np.random.default_rng(22), reps, 2, noisier(ratio, "group")), FIXED)
    assert family_error(v, FAMILIES[2]) <= mc_bound(ALPHA, reps)


def test_null_under_sequential_seeds_holds_alpha():
    # The runner adds seeds to undecided comparisons; each look's pooled variance is the one its seeds give.
    reps = 1500
    for ratio, where in ((1, "size"), (4, "size"), (4, "group")):
        v, n = runner(ladder(np.random.default_rng(23), reps, SEQUENTIAL.max, noisier(ratio, where)), SEQUENTIAL)
        assert family_error(v, FAMILIES[2]) <= mc_bound(ALPHA, reps), (ratio, where)
        assert n.mean() > 3.5  # almost every null comparison runs to max


# ---------------------------------------------------------------- what it decides

def test_two_run_groups_with_two_seeds_decide_nothing():
    # One size, a baseline and a variant, two seeds: the only variance is the pair's own, on 1 df.
    rng = np.random.default_rng(24)
    y = 3.0 + 0.02 * rng.standard_normal((3000, 2, 2)) + np.array([0.0, -1.0])[None, :, None]
    v = decide_design(y, np.full((3000, 1), 2), [0, 0], [(1, 0)], [[0]], DEFAULT_MARGIN, FIXED)
    assert np.all(v == UNDECIDED)


def test_identical_functions_in_the_ladder_are_equivalent():
    # Rung 3 computes the same function as rung 2 (seeds agree to 1e-7): far quieter than the pool, it is tested
    # on its own spread, equivalent at 3 seeds; the other comparisons keep the pool.
    reps = 200
    rng = np.random.default_rng(25)
    y = ladder(rng, reps, SEQUENTIAL.max, np.full(K * G, NOISE), steps(4.0))
    for k in range(K):
        y[:, k * G + 3] = y[:, k * G + 2] + 1e-7 * rng.standard_normal((reps, SEQUENTIAL.max))
    v, n = runner(y, SEQUENTIAL)
    same = [k * (G - 1) + 2 for k in range(K)]  # the pairs (rung 3, rung 2)
    assert np.all(v[:, same] == EQUIVALENT) and np.all(n[:, same] == 3)


def test_pooling_buys_power_on_the_ladder_at_two_seeds():
    # Each rung better than the one before by 3 std of a paired difference: alone, two seeds decide nothing.
    reps = 2000
    y = ladder(np.random.default_rng(26), reps, 2, np.full(K * G, NOISE), steps(3.0))
    pooled, _ = runner(y, FIXED)
    own, _ = runner(y, FIXED, pooled=False)
    assert np.mean(own == BETTER) == 0.0 and np.mean(pooled == BETTER) > 0.4  # measured 0.49
    assert np.mean(pooled == WORSE) == 0.0


# ---------------------------------------------------------------- the tables of docs/verdicts.md

def _tables(reps: int) -> None:
    print("false better/worse in the noisier size's family (null), by variance ratio:")
    for policy in (FIXED, SeedPolicy(2, 6)):
        for where in ("size", "group"):
            row = []
            for ratio in (1, 2, 4, 8, 16):
                v, _ = runner(ladder(np.random.default_rng(30), reps, policy.max, noisier(ratio, where)), policy)
                row.append(f"{ratio}x: {family_error(v, FAMILIES[2]):.3f}")
            print(f"  seeds {policy.min}..{policy.max}, one {where} noisier: " + ", ".join(row), flush=True)
    print("power per comparison (better, each rung better than the last by the effect):")
    for policy in (FIXED, SeedPolicy(2, 4), SeedPolicy(2, 6)):
        for effect in (1.5, 3.0):
            y = ladder(np.random.default_rng(31), reps, policy.max, np.full(K * G, NOISE), steps(effect))
            cells = []
            for pooled in (True, False):
                v, n = runner(y, policy, pooled)
                cells.append(f"{'pooled' if pooled else 'own'} {np.mean(v == BETTER):.3f} at {n.mean():.2f} seeds")
            print(f"  seeds {policy.min}..{policy.max}, effect {effect} std: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    _tables(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
