"""Verdicts for a whole design at once: every comparison's noise at every look from the pooled model (pooled.py),
then the sequential tests, Holm within each family (verdicts.py).

compare() calls design_noise on one run folder; the Monte Carlo of tests/test_pooled_mc.py calls decide_design on
thousands of simulated ones, so both run the same procedure. Arrays: losses (..., G, S), run group by seed
position, NaN where no completed run; pairs: (variant, baseline) group indices; sizes (G,): each group's size.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .pooled import ACROSS_ALPHA, WITHIN_ALPHA, look_noise
from .verdicts import DEFAULT_MARGIN, SeedPolicy, decide_batch


def design_noise(losses: np.ndarray, sizes: Sequence[int], pairs: Sequence[tuple[int, int]], looks: range,
                 across: float = ACROSS_ALPHA, within: float = WITHIN_ALPHA
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(var, df, source code, checked) of each pair's per-seed difference at each look, shapes (..., P, S): the
    look with r seeds in entry r - 1, from the runs at the first r seed positions (pooled.look_noise); NaN var,
    df 0, source "cell", unchecked where no look is taken. Replicates sharing which runs completed share one fit."""
    y = np.asarray(losses, dtype=np.float64)
    batch, (g, s) = y.shape[:-2], y.shape[-2:]
    flat = y.reshape((-1, g, s))
    p = len(pairs)
    var = np.full((flat.shape[0], p, s), np.nan)
    df = np.zeros((flat.shape[0], p, s), dtype=int)
    src = np.full((flat.shape[0], p, s), 2)
    checked = np.zeros((flat.shape[0], p, s), dtype=bool)
    for r in looks:
        if not 1 <= r <= s or not p:
            continue
        sub = flat[..., :r]
        masks, which = np.unique(np.isfinite(sub).reshape(len(sub), -1), axis=0, return_inverse=True)
        for u, mask in enumerate(masks):
            rows = np.flatnonzero(which.reshape(-1) == u)
            v, f, c, k = look_noise(sub[rows], mask.reshape(g, r), np.asarray(sizes), list(pairs), across, within)
            var[rows, :, r - 1], df[rows, :, r - 1], src[rows, :, r - 1], checked[rows, :, r - 1] = v, f, c, k
    shape = batch + (p, s)
    return var.reshape(shape), df.reshape(shape), src.reshape(shape), checked.reshape(shape)


def decide_design(losses: np.ndarray, lengths: np.ndarray, sizes: Sequence[int], pairs: Sequence[tuple[int, int]],
                  families: Sequence[Sequence[int]], margin: float = DEFAULT_MARGIN, policy: SeedPolicy = SeedPolicy(),
                  across: float = ACROSS_ALPHA, within: float = WITHIN_ALPHA, pooled: bool = True) -> np.ndarray:
    """Verdicts (..., P) of every pair: paired differences of the losses, each look's pooled noise (pooled=False:
    each comparison's own variance, the per-comparison test), Holm within each family of pair indices. across,
    within: the levels of pooled.py's tests (0 never leaves the pool).

    lengths (..., P): the seeds each comparison has run (its current look)."""
    y = np.asarray(losses, dtype=np.float64)
    v, w = (np.array([pair[i] for pair in pairs]) for i in (0, 1))
    d = y[..., v, :] - y[..., w, :]
    var = df = checked = None
    if pooled:
        var, df, _, checked = design_noise(y, sizes, pairs, policy.looks(), across, within)
    out = np.full(d.shape[:-1], "", dtype=object)
    for family in families:
        f = list(family)
        noise = {} if var is None else {"var": var[..., f, :], "df": df[..., f, :], "checked": checked[..., f, :]}
        out[..., f] = decide_batch(d[..., f, :], margin, policy, np.asarray(lengths)[..., f], **noise)
    return out
