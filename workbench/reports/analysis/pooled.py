"""The noise a verdict has to see through, estimated from the whole design instead of one comparison's seeds.

Model. Within a size (results.json's sizes: the widths of a scaling sweep or the points of a sweep: axis, both
Variant.size; every run group there, A/A controls included; a tuned experiment's groups are the ones its
verdicts compare, each variant at its chosen grid point), the final loss of run group g at seed s is

    loss[g, s] = mu + a_g + b_s + e[g, s],   e ~ N(0, sigma^2) independent,

a group effect plus a seed block (seed s gives every group the same batches and, where shapes agree, the same
initial values), fitted by least squares over the completed runs: unbalanced designs (sequential seeding gives
undecided comparisons more seeds, diverged runs are missing) are fitted as they are, with df = N - rank(X). A
paired difference d_s = loss[v, s] - loss[w, s] has Var = 2 sigma^2. With two groups and the same seeds, the
residual SS is sum_s (d_s - mean d)^2 / 2 on n - 1 df, so 2 sigma^2 hat is exactly the paired differences' own
variance: the per-comparison test is the special case.

Three levels, per comparison and look (results.json "variance"), each a variance of d with its df:

- ``pooled``: 2 sum SS / sum df over every size;
- ``size``: 2 SS / df of the comparison's own size, when that size's residual variance is larger than the other
  sizes' pooled (one-sided F test, SS_k/df_k against the rest, at ACROSS_ALPHA), or the experiment has one size
  (or one with residual df);
- ``cell``: the comparison's own paired differences, s_d^2 on n - 1 df, when s_d^2 is at least the level's
  variance above and larger than the rest of that level's pool (one-sided F test of s_d^2 / 2 against the level
  refitted without the pair's two groups, at WITHIN_ALPHA: independent of d, since the runs are disjoint and the
  seed effects cancel in d); or when that test cannot run (fewer than 2 paired seeds, or nothing in the level
  beyond the two groups: Noise.checked False).

Each narrower level is taken only where its variance is the larger one, on fewer df: so every test it passes,
the test on the pooled variance passes too, and under the model (one sigma^2) the error rates are those of the
pooled test, which is exact t. A size or comparison that is detectably noisier than the rest keeps its own,
larger variance; one that is quieter keeps the pool, and verdicts.py tests its own spread beside it on a share
of alpha (OWN_SHARE), which is how the same function computed twice (seeds agreeing to 1e-6) is found
equivalent while its neighbours' noise fills the pool. Two levels would not do: the noise of a size grows or
shrinks with width and horizon (size vs pooled), and run groups of one size can differ (cell vs size).

Cost and limits (Monte Carlo on the ladder's design, docs/verdicts.md, tests/test_pooled_mc.py): the tests'
levels of 0.5 keep false better/worse within alpha for a noisier size at any variance ratio and for one noisier
run group up to 4x its neighbours' variance (at 8x: 0.060 at two fixed seeds, where 1 df cannot show it); a
comparison whose own 1-df spread happens to exceed the pool's (about 3 in 10 at two seeds) stays undecided.

The estimate is the paired mean over the two groups' common seeds (what the report's Δ has always been), not the
least-squares contrast: it is unbiased whatever the other groups do, and when the two groups have the same
completed seeds among a look's it is the model's own contrast, a vector in the model space, so it is independent
of the residual SS and mean / sqrt(2 sigma^2 / n) is exactly t with the pool's df. A diverged partner (one of the
two has a seed the other lacks) leaves its unpaired run in the variance only: the t is then approximate.

Looks. The look with r seeds uses the runs at the experiment's first r seeds, for the mean and for every fit and
test, so a look's numbers depend only on the data of its seeds: once the runner's round has trained them they
never change, and a decision is never taken back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

POOLED, SIZE, CELL = "pooled", "size", "cell"
SOURCES = (POOLED, SIZE, CELL)  # index = the code stored in the arrays below
ACROSS_ALPHA = 0.5  # level of the F test of a size's variance against the other sizes' (docs/verdicts.md)
WITHIN_ALPHA = 0.5  # level of the F test of a comparison's own spread against the rest of its pool


@dataclass(frozen=True)
class Noise:
    """The variance of one comparison's per-seed paired difference at one look, its degrees of freedom, and where
    it comes from (pooled | size | cell). checked: a pool existed to check the comparison's own spread against
    (then its own spread is tested beside this one, on a share of alpha: verdicts.py); False, var is its own."""

    var: float
    df: int
    source: str
    checked: bool


@lru_cache(maxsize=4096)
def _basis(shape: tuple[int, int], cells: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The observed entries (g, s) of a design, an orthonormal basis of its additive model's columns, and df.
    A function of the design alone (cached: a simulation meets the same designs again and again)."""
    mask = np.frombuffer(cells, dtype=bool).reshape(shape)
    g, s = np.nonzero(mask)
    if g.size == 0:
        return g, s, np.zeros((0, 0)), 0
    x = np.concatenate([np.ones((g.size, 1)), np.eye(shape[0])[g], np.eye(shape[1])[s]], axis=1)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    rank = int(np.sum(sv > sv[0] * max(x.shape) * np.finfo(float).eps))
    return g, s, u[:, :rank], int(g.size - rank)


def additive_fit(y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Residual SS (shape y.shape[:-2]) and df of loss[g, s] = mu + a_g + b_s + e over the entries in mask.

    y: (..., G, S) losses; mask: (G, S) bool, the observed entries, shared by the batch (y elsewhere is ignored).
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    g, s, q, df = _basis(mask.shape, mask.tobytes())
    if g.size == 0:
        return np.zeros(y.shape[:-2]), 0
    obs = y[..., g, s]
    obs = obs - obs.mean(axis=-1, keepdims=True)  # the intercept is in the model: centring only helps precision
    resid = obs - (obs @ q) @ q.T
    return np.sum(resid ** 2, axis=-1), df


def f_sf(var_a: np.ndarray, df_a: np.ndarray, var_b: np.ndarray, df_b: np.ndarray) -> np.ndarray:
    """P(F >= var_a / var_b) for F ~ F(df_a, df_b): the one-sided p-value of "a is the larger variance"; NaN where
    either df is 0. 0/0 reads as a ratio of 1, x/0 as infinite."""
    var_a, df_a, var_b, df_b = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (var_a, df_a, var_b, df_b)))
    ok = (df_a > 0) & (df_b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(var_b > 0, var_a / np.where(var_b > 0, var_b, 1.0), np.where(var_a > 0, np.inf, 1.0))
        p = special.fdtrc(np.where(ok, df_a, 1.0), np.where(ok, df_b, 1.0), np.where(np.isnan(f), 1.0, f))
    return np.where(ok & ~np.isnan(f), p, np.nan)


def look_noise(y: np.ndarray, mask: np.ndarray, sizes: np.ndarray, pairs: list[tuple[int, int]],
               across: float = ACROSS_ALPHA, within: float = WITHIN_ALPHA
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(var, df, source code, checked) per pair, shapes (..., P): the noise of each pair's per-seed paired
    difference from the runs in mask (G, S), shared by the batch y (..., G, S). sizes (G,): each group's size
    index (a pair's two groups share one); source codes index SOURCES; checked: whether a pool existed to test the
    pair's own spread against (Noise.checked). The levels and tests are the module docstring's."""
    sizes = np.asarray(sizes)
    batch, groups = y.shape[:-2], np.arange(len(sizes))
    ks = list(np.unique(sizes))
    fits = [additive_fit(y[..., sizes == k, :], mask[sizes == k]) for k in ks]
    ss_k = np.stack([f[0] for f in fits], axis=-1) if ks else np.zeros(batch + (0,))
    df_k = np.array([f[1] for f in fits], dtype=float)
    ss_all, df_all = ss_k.sum(axis=-1), float(df_k.sum())
    if int(np.sum(df_k > 0)) >= 2:  # a pool across sizes needs two sizes with residual df
        with np.errstate(invalid="ignore", divide="ignore"):
            p_size = f_sf(ss_k / df_k, df_k, (ss_all[..., None] - ss_k) / (df_all - df_k), df_all - df_k)
        alone = ~np.isnan(p_size) & (p_size < across)  # (..., K): this size's own model
    else:
        alone = np.ones(batch + (len(ks),), dtype=bool)
    # Per pair: its own spread on n - 1 df, the level it would use (its size alone, or the pool), and that level
    # refitted without the pair's two groups (independent of the pair's differences), stacked on a last axis.
    own, n, lone, level_ss, level_df, rest_ss, rest_df = ([] for _ in range(7))
    for j, (v, w) in enumerate(pairs):
        if sizes[v] != sizes[w]:
            raise ValueError(f"pair {j} compares groups of different sizes ({sizes[v]} and {sizes[w]})")
        i = ks.index(sizes[v])
        both = mask[v] & mask[w]
        k = int(both.sum())
        d = np.where(both, y[..., v, :] - y[..., w, :], 0.0)
        mean = d.sum(axis=-1) / max(k, 1)
        ss = (np.where(both, d - mean[..., None], 0.0) ** 2).sum(axis=-1)
        own.append(ss / (k - 1) if k >= 2 else np.full(batch, np.nan))
        n.append(k)
        keep = (sizes == sizes[v]) & (groups != v) & (groups != w)
        ss_rest, df_rest = additive_fit(y[..., keep, :], mask[keep])
        a = alone[..., i]
        lone.append(a)
        level_ss.append(np.where(a, ss_k[..., i], ss_all))
        level_df.append(np.where(a, df_k[i], df_all))
        rest_ss.append(np.where(a, ss_rest, ss_all - ss_k[..., i] + ss_rest))
        rest_df.append(np.where(a, df_rest, df_all - df_k[i] + df_rest))
    if not pairs:
        empty = np.zeros(batch + (0,))
        return empty, empty.astype(int), empty.astype(int), empty.astype(bool)
    own, lone, level_ss, level_df, rest_ss, rest_df = (np.stack(x, axis=-1) for x in
                                                       (own, lone, level_ss, level_df, rest_ss, rest_df))
    n = np.array(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        level_var = 2.0 * level_ss / level_df
        p_hi = f_sf(own / 2.0, n - 1, rest_ss / rest_df, rest_df)
    checked = ~np.isnan(p_hi)
    larger = checked & (p_hi < within) & (own >= level_var)  # a noisier pair: its own, larger variance
    pooled = checked & ~larger
    var = np.where(pooled, level_var, own)
    dfs = np.where(pooled, level_df, np.maximum(n - 1, 0)).astype(int)
    src = np.where(pooled, np.where(lone, SOURCES.index(SIZE), SOURCES.index(POOLED)), SOURCES.index(CELL))
    return var, dfs, src, checked
