"""The pooled noise model (workbench/reports/analysis/pooled.py) against closed forms and scipy, its three levels on
constructed data, and through compare(): the ladder at three widths with two seeds, and results.json's fields."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from test_comparisons import write_run_dir
from workbench.reports import compare, load_results
from workbench.reports.analysis.pooled import CELL, POOLED, SIZE, SOURCES, additive_fit, f_sf, look_noise


def two_way_residual_ss(y: np.ndarray) -> float:
    """Balanced complete data: sum (y_gs - mean_g - mean_s + mean)^2, the textbook two-way ANOVA residual."""
    return float(((y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()) ** 2).sum())


def lstsq_fit(y: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Unbalanced data: reference-coded dummies, np.linalg.lstsq, df = N - matrix_rank."""
    g, s = np.nonzero(mask)
    x = np.column_stack([np.ones(g.size)] + [(g == k).astype(float) for k in range(1, mask.shape[0])]
                        + [(s == k).astype(float) for k in range(1, mask.shape[1])])
    beta, *_ = np.linalg.lstsq(x, y[g, s], rcond=None)
    return float(((y[g, s] - x @ beta) ** 2).sum()), int(g.size - np.linalg.matrix_rank(x))


# ---------------------------------------------------------------- the model fit

def test_additive_fit_is_the_two_way_anova_residual():
    y = np.random.default_rng(0).normal(3.0, 0.1, (5, 4))
    ss, df = additive_fit(y, np.ones((5, 4), dtype=bool))
    assert ss == pytest.approx(two_way_residual_ss(y), rel=1e-10) and df == (5 - 1) * (4 - 1)
    # A batch of replicates shares one design.
    batch = np.random.default_rng(1).normal(3.0, 0.1, (7, 5, 4))
    got, _ = additive_fit(batch, np.ones((5, 4), dtype=bool))
    assert got == pytest.approx([two_way_residual_ss(b) for b in batch], rel=1e-10)


def test_additive_fit_unbalanced_matches_lstsq():
    rng = np.random.default_rng(2)
    y = rng.normal(3.0, 0.1, (5, 6))
    mask = np.ones((5, 6), dtype=bool)
    mask[1, 4:] = mask[3, 5] = mask[4, 2] = False  # fewer seeds for a decided comparison, a diverged run
    ss, df = additive_fit(np.where(mask, y, np.nan), mask)
    ref_ss, ref_df = lstsq_fit(y, mask)
    assert ss == pytest.approx(ref_ss, rel=1e-9) and df == ref_df == mask.sum() - (1 + 4 + 5)
    # A seed only one group ran adds an observation and a parameter: no df. No data: nothing.
    lone = np.zeros((2, 3), dtype=bool)
    lone[:, :2] = True
    lone[0, 2] = True
    assert additive_fit(np.ones((2, 3)), lone)[1] == 1
    assert additive_fit(np.ones((2, 3)), np.zeros((2, 3), dtype=bool)) == (0.0, 0)


def test_two_groups_are_the_paired_differences_own_variance():
    # k = 2, balanced: 2 sigma^2 hat = the sample variance of the paired differences, on n - 1 df.
    rng = np.random.default_rng(3)
    for n in (2, 3, 7):
        y = rng.normal(3.0, 0.05, (2, n))
        ss, df = additive_fit(y, np.ones((2, n), dtype=bool))
        d = y[1] - y[0]
        assert df == n - 1 and 2 * ss / df == pytest.approx(np.var(d, ddof=1), rel=1e-10)


def test_f_sf_is_the_f_survival_function():
    assert f_sf(2.5, 3, 1.0, 7) == pytest.approx(sps.f.sf(2.5, 3, 7), rel=1e-12)
    assert f_sf(np.array([0.3, 4.0]), 1, 2.0, 12) == pytest.approx(sps.f.sf([0.15, 2.0], 1, 12), rel=1e-12)
    assert f_sf(0.0, 2, 0.0, 5) == pytest.approx(sps.f.sf(1.0, 2, 5))  # 0/0: a ratio of 1
    assert f_sf(1.0, 2, 0.0, 5) == 0.0 and f_sf(0.0, 2, 1.0, 5) == 1.0
    assert np.isnan(f_sf(1.0, 0, 1.0, 5)) and np.isnan(f_sf(1.0, 3, 1.0, 0))


# ---------------------------------------------------------------- the three levels

def design(rng, sizes: int, groups: int, seeds: int, std) -> tuple[np.ndarray, np.ndarray, list, np.ndarray]:
    """Losses (sizes * groups, seeds), the size of each group, a ladder's pairs, and the mask of all runs."""
    std = np.broadcast_to(np.asarray(std, dtype=float), (sizes * groups,))
    y = 3.0 + std[:, None] * rng.standard_normal((sizes * groups, seeds)) + rng.standard_normal(seeds)
    pairs = [(k * groups + i, k * groups + i - 1) for k in range(sizes) for i in range(1, groups)]
    return y, np.repeat(np.arange(sizes), groups), pairs, np.ones(y.shape, dtype=bool)


def sources(codes) -> list[str]:
    return [SOURCES[c] for c in np.ravel(codes)]


def test_homogeneous_sizes_pool_every_run():
    y, sizes, pairs, mask = design(np.random.default_rng(4), 3, 6, 2, 0.02)
    var, df, src, checked = look_noise(y, mask, sizes, pairs, across=0.0, within=0.0)
    ss = sum(two_way_residual_ss(y[sizes == k]) for k in range(3))
    assert sources(src) == [POOLED] * 15 and list(df) == [15] * 15 and checked.all()
    assert var == pytest.approx(np.full(15, 2 * ss / 15), rel=1e-10)


def test_a_noisier_size_uses_its_own_model():
    rng = np.random.default_rng(5)
    y, sizes, pairs, mask = design(rng, 3, 6, 3, np.repeat([0.02, 0.02, 0.2], 6))
    var, df, src, _ = look_noise(y, mask, sizes, pairs, within=0.0)
    assert sources(src) == [POOLED] * 10 + [SIZE] * 5
    assert list(df[10:]) == [10] * 5 and var[10] == pytest.approx(2 * two_way_residual_ss(y[12:]) / 10)
    assert list(df[:10]) == [30] * 10  # the others keep every size's runs, the noisy one included: conservative


def test_a_noisier_pair_uses_its_own_spread():
    rng = np.random.default_rng(6)
    y, sizes, pairs, mask = design(rng, 1, 8, 6, 0.02)
    y[5] = y[4] + 0.1 * rng.standard_normal(6)  # a noisy rung (5x the std): its pair with rung 4 has a large spread
    var, df, src, checked = look_noise(y, mask, sizes, pairs)
    assert sources(src)[4] == CELL and var[4] == pytest.approx(np.var(y[5] - y[4], ddof=1)) and df[4] == 5
    assert sources(src)[:2] == [SIZE, SIZE] and df[0] == 7 * 5  # the others: their size's model (one size)
    assert checked.all()  # every pair had the rest of its size to be checked against
    # The quieter a pair's own spread, the more it keeps the pool: only a larger one replaces it.
    y[2] = y[1] + 1e-9 * rng.standard_normal(6)  # rung 2 is rung 1 computed another way
    _, _, src, checked = look_noise(y, mask, sizes, pairs)
    assert sources(src)[1] == SIZE and checked[1]  # its own spread is tested beside the pool (verdicts.OWN_SHARE)


def test_nothing_to_pool_with_is_the_pairs_own_variance():
    rng = np.random.default_rng(7)
    y, sizes, pairs, mask = design(rng, 1, 2, 4, 0.02)
    var, df, src, checked = look_noise(y, mask, sizes, pairs)
    assert sources(src) == [CELL] and df[0] == 3 and var[0] == pytest.approx(np.var(y[1] - y[0], ddof=1))
    assert not checked[0]
    # A baseline and its A/A twin and one variant: no pair has anything beyond its own two groups to check
    # against, so each keeps its own spread.
    y, sizes, _, mask = design(rng, 1, 3, 4, 0.02)
    _, df, src, checked = look_noise(y, mask, sizes, [(1, 0), (2, 0)])
    assert sources(src) == [CELL, CELL] and list(df) == [3, 3] and not checked.any()


def test_a_look_depends_only_on_its_seeds():
    rng = np.random.default_rng(8)
    y, sizes, pairs, mask = design(rng, 3, 6, 4, 0.02)
    before = look_noise(y[:, :3], mask[:, :3], sizes, pairs)
    y2 = y.copy()
    y2[:, 3] += rng.standard_normal(18)  # the 4th seed changes: the look at 3 seeds does not
    for a, b in zip(before, look_noise(y2[:, :3], mask[:, :3], sizes, pairs)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- through compare(): the ladder at three widths

RUNGS = ["gpt2", "rmsnorm", "swiglu", "rope", "no_bias", "llama"]
WIDTHS = ["d32", "d64", "d128"]


def ladder_dir(tmp_path, noise: dict[str, float] | None = None):
    """llama_ladder_scale as it ran: 3 widths x 6 rungs x seeds [0, 1]; per-size seed blocks, each rung's own
    effect, run noise 0.03 (per width in `noise`)."""
    rng = np.random.default_rng(9)
    effects = [0.0, 0.01, 0.3, -0.6, 0.15, -0.5]
    groups = {}
    for width in WIDTHS:
        block = 0.1 * rng.standard_normal(2)
        for arch, a in zip(RUNGS, np.cumsum(effects)):
            losses = 4.0 + a + block + (noise or {}).get(width, 0.03) * rng.standard_normal(2)
            groups[f"{arch}@{width}"] = {"arch": arch, "size": width,
                                         "runs": {s: ("completed", float(x), None) for s, x in enumerate(losses)}}
    return write_run_dir(tmp_path, groups, baseline="gpt2", ladder=True, seeds=[0, 1], sizes=WIDTHS)


def test_the_ladder_at_three_widths_with_two_seeds_pools_and_bounds_every_cell(tmp_path):
    run_dir = ladder_dir(tmp_path)
    got = compare(load_results(run_dir), run_dir)
    assert len(got) == 15
    for c in got.values():
        if c.variance == POOLED:  # both homogeneity tests passed: every size's runs, 3 x (6 - 1) x (2 - 1) df
            assert c.df == 15 and c.estimable and math.isfinite(c.low) and c.high - c.low < 1.0
        elif c.variance == SIZE:  # its size's variance exceeds the others': that size's runs alone
            assert c.df == 5 and c.estimable and c.high - c.low < 1.5
        else:  # its own spread exceeds its pool's: its own 1 df, no interval, no verdict
            assert (c.variance, c.df, c.low, c.verdict) == (CELL, 1, None, "undecided") and not c.estimable
    kinds = [c.variance for c in got.values()]
    assert kinds.count(POOLED) >= 3 and kinds.count(CELL) <= 6
    # The large rungs (RoPE, the untied head: 14 and 12 std of a paired difference) are decided wherever bounded.
    assert all(got[f"{r}@{w}"].verdict == "better" for r in ("rope", "llama") for w in WIDTHS if got[f"{r}@{w}"].estimable)
    record = json.loads(json.dumps(next(c for c in got.values() if c.variance == POOLED).as_json()))
    assert record["df"] == 15 and record["variance"] == "pooled" and record["estimable"] is True


def test_a_noisier_width_is_not_pooled(tmp_path):
    run_dir = ladder_dir(tmp_path, {"d128": 0.6})
    got = compare(load_results(run_dir), run_dir)
    assert {got[f"{r}@d128"].variance for r in RUNGS[1:]} <= {SIZE, CELL}
    assert all(got[f"{r}@d128"].df <= 5 for r in RUNGS[1:])
