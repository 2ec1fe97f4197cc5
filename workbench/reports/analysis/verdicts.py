"""Verdicts a researcher can act on (better, worse, equivalent, undecided), valid while seeds are added.

A comparison is the per-seed paired difference d_i = variant loss - baseline loss (same seed; d < 0: the variant
is better). At the look with n seeds, one-sided t-tests on the mean of the d_i give p-values for three nulls:
mu >= 0 (rejected: better), mu <= 0 (rejected: worse), |mu| >= margin (rejected by TOST, the two one-sided tests
against -margin and +margin: equivalent, which wins over a significant sign: the difference is too small to
matter). The t-tests' variance of one d_i is the comparison's own sample variance on n - 1 df, or the one pooled
from the whole design (pooled.py, given per look as Noise); beside a pooled variance the comparison's own is a
second test on OWN_SHARE of alpha, the pooled one getting the rest (p = min(p_pool / 0.8, p_own / 0.2): a
Bonferroni split, valid whichever of the two happens to be smaller). No test rests on a variance with fewer than
MIN_DF = 2 degrees of freedom: two paired seeds alone decide nothing (estimable.py).

Seeds (SeedPolicy): the runner looks at n = min..max seeds, adding one seed to the undecided comparisons. Look n
spends alpha_n, the increments of alpha * t^rho, t = (n - min + 1) / (max - min + 1), which sum to alpha. A null's
p-value over the whole sequence is min_n p_n * alpha / alpha_n: by a union bound over the looks it is valid however
the runner stops, and it only falls as seeds are added, so a decision is never taken back.

Comparisons: Holm's step-down at alpha over the 2m one-sided difference nulls (both signs, so a wrong-sign claim is
an error too; Holm needs only valid p-values, and the m comparisons are dependent through the shared baseline) and,
as its own family, over the m equivalence nulls. Across all comparisons and looks, P(any false better/worse) <=
alpha and P(any false equivalent) <= alpha.

rho, chosen by simulating the runner loop (decide_batch; min 2, max 8, alpha 0.05, margin 0.01, one comparison,
10,000 to 20,000 replicates, std 0.02 unless said). alpha spent at n = 2 buys little: at df = 1 the quantiles are
enormous (t_{1-0.0036, 1} = 88 at the one-sided level of equal shares), and a 9-std effect is mostly decided at n = 3
anyway, so the shares grow with n.

    rho                                     1      1.5    2      3      4
    power, effect 1.5 std                   0.73   0.79   0.82   0.86   0.89
    power, effect 1 std                     0.37   0.42   0.46   0.51   0.55
    mean seeds, effect 9 std (-0.18/0.02)   3.06   3.26   3.45   3.78   4.00
    mean seeds to equivalent, std 0.003     3.88   4.06   4.24   4.58   4.86

rho = 2 (look n = min + k - 1 gets alpha (2k - 1) / K^2 of K looks) is the middle: 80% power at 1.5 std
differences, where a fixed 8 seeds have 95% but always cost 8 (here 6.4 on average), while clear results stop
early. (The table was measured when n = 2 could decide on its 1 df; it no longer can, which moved these numbers by
less than their Monte-Carlo error.) Measured at rho = 2 with each comparison's own variance (10,000 replicates):
false better/worse under mu = 0 is 0.030 (std 0.02 and 0.05; 0.030 for any of 3 comparisons sharing a baseline),
the union bound being conservative; false equivalent at mu = margin <= 0.023 (std 0.002 to 0.05); identical
functions (std 1e-7) are equivalent at n = 3 every time; -0.18 with std 0.02 is better at 3 seeds (53%) or 4
(47%); mu = 0 with std 0.0025 is equivalent every time, at 4.0 seeds on average. With the pooled variance on the
ladder's design, pooled.py and docs/verdicts.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as sps

from .estimable import MIN_DF, delta_estimable
from .pooled import CELL, Noise

BETTER, WORSE, EQUIVALENT, UNDECIDED = "better", "worse", "equivalent", "undecided"
# No verdict between two variants when either has not learned: its final val loss is not clearly below the
# unigram floor (the rule and its margin live in analysis/learned.py).
NOT_LEARNED = "not learned yet"

# 0.01 nats is a 1% change in perplexity (e^0.01 = 1.010): smaller than anything an architecture choice is made
# on, and about the seed-to-seed noise of the small runs this workbench makes: "equivalent" means "does not matter".
DEFAULT_MARGIN = 0.01
POWER = 0.8  # target power of seeds_needed
SPEND_POWER = 2.0  # shape rho of the alpha-spending function alpha * t^rho (see the module docstring)
# With a pooled variance, the comparison's own spread is tested beside it on this share of each look's alpha (the
# pooled test on the rest): a Bonferroni split, so the same function computed two ways (seeds that agree to 1e-6)
# is found equivalent on its own spread while its neighbours' noise fills the pool, and the error rate holds.
OWN_SHARE = 0.2
_MAX_SEEDS_NEEDED = 10_000


def _is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SeedPolicy:
    """Seeds per comparison: the first look at `min` seeds, one more seed per look while undecided, up to `max`.

    alpha is spent across the looks n = min..max by the spending function alpha * t^rho, t = (n - min + 1) /
    (max - min + 1): look n gets the increment, the increments sum to alpha, and a union bound over the looks
    keeps the error rate at most alpha however the runner stops. min == max (a fixed seed list) is one look
    that spends all of alpha.
    """

    min: int = 2
    max: int = 8
    alpha: float = 0.05
    rho: float = SPEND_POWER

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and isinstance(self.max, int) and 1 <= self.min <= self.max):
            raise ValueError(f"SeedPolicy needs integers 1 <= min <= max, got min={self.min}, max={self.max}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"SeedPolicy alpha must be in (0, 1), got {self.alpha}")
        if not self.rho > 0.0:
            raise ValueError(f"SeedPolicy rho must be > 0, got {self.rho}")

    def look_alpha(self, n: int) -> float:
        """Alpha spent at the look with n seeds; 0 outside min..max (no look there)."""
        if not self.min <= n <= self.max:
            return 0.0
        looks = self.max - self.min + 1
        k = n - self.min + 1
        return self.alpha * ((k / looks) ** self.rho - ((k - 1) / looks) ** self.rho)

    def looks(self) -> range:
        return range(self.min, self.max + 1)


@dataclass(frozen=True)
class Verdict:
    """One comparison (variant - baseline, paired by seed) after the current look.

    n: finite paired differences; mean: their mean. diff_std: the std of one paired difference behind the shown
    interval, sqrt of a variance on `df` degrees of freedom from `variance` (pooled.py: "pooled" | "size" |
    "cell", the last being the differences' own sample std, ddof=1; beside a pool, the own one where its interval
    is the narrower); None without an estimate (df 0).
    low, high: the two-sided interval at this look, at `level` = 1 - look_alpha(seeds) / m (Bonferroni over the
    m comparisons; before the first look, the first look's level): inside (-margin, margin) the verdict is
    equivalent, else excluding 0 it is better/worse; Holm and earlier looks can decide before the interval
    shows it. None where the data cannot bound it (estimable.py: df < 2, or wider than 10x the experiment's
    largest |Δ|) and before the first look. level None: no test was taken (NOT_LEARNED, comparisons.py).
    seeds_needed: for an undecided comparison, the total seeds at which the test that would resolve it (the
    difference if |mean| >= margin, else equivalence) has 80% power at the observed mean and std; None otherwise,
    and None from a variance on fewer than 2 df (not estimable: the report says so).
    """

    verdict: str
    n: int
    mean: float | None
    low: float | None
    high: float | None
    level: float | None
    diff_std: float | None
    seeds_needed: int | None
    margin: float
    df: int | None
    variance: str | None

    @property
    def estimable(self) -> bool:
        """Whether the interval bounds the difference (estimable.py); else the report prints the point estimate."""
        return self.low is not None and self.high is not None


# ---------------------------------------------------------------- the test, vectorised over replicates

def _one_sided_p(mean: np.ndarray, var: np.ndarray, n: np.ndarray, df: np.ndarray, shift: float,
                 below: bool) -> np.ndarray:
    """t-test p-value of H: mu >= shift (below=True: evidence that mu < shift) or H: mu <= shift (below=False), for
    the mean of n paired differences whose per-seed variance estimate var has df degrees of freedom.

    No test (p = 1) with n < 1 or df < MIN_DF. var == 0 is a deterministic difference: p = 0 when the mean is
    strictly on the claimed side of shift, else 1.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (mean - shift) / np.sqrt(var / n)
        dof = np.maximum(df, 1)
        p = sps.t.cdf(z, dof) if below else sps.t.sf(z, dof)
    strict = (mean < shift) if below else (mean > shift)
    p = np.where(var == 0, np.where(strict, 0.0, 1.0), p)
    return np.where((n >= 1) & (df >= MIN_DF) & np.isfinite(p), p, 1.0)


def _holm(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down rejections along the last axis: the k-th smallest p is tested at alpha / (K - k + 1)."""
    k = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    ok = np.cumprod(ranked <= alpha / np.arange(k, 0, -1), axis=-1).astype(bool)
    reject = np.empty_like(ok)
    np.put_along_axis(reject, order, ok, axis=-1)
    return reject


def _look_stats(d: np.ndarray, lengths: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n, mean and variance (ddof=1; NaN when n < 2) of the finite values among the first min(r, length) entries."""
    x = d[..., :r]
    use = np.isfinite(x) & (np.arange(x.shape[-1]) < lengths[..., None])
    n = use.sum(axis=-1)
    x = np.where(use, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, x.sum(axis=-1) / np.maximum(n, 1), 0.0)
        ss = (np.where(use, x - mean[..., None], 0.0) ** 2).sum(axis=-1)
        var = np.where(n >= 2, ss / np.maximum(n - 1, 1), np.nan)
    return n, mean, var


def _sequential_p(d: np.ndarray, lengths: np.ndarray, margin: float, policy: SeedPolicy,
                  var: np.ndarray | None, df: np.ndarray | None, checked: np.ndarray | None):
    """Per comparison, the Bonferroni-over-looks p-values min_n p_n * alpha / alpha_n of the three nulls
    mu >= 0 (reject: better), mu <= 0 (reject: worse) and |mu| >= margin (reject, by TOST: equivalent).

    The look with r seeds uses the finite values among the first r entries, and var[..., r - 1] on df[..., r - 1]
    degrees of freedom (None: their own sample variance on n - 1); where checked[..., r - 1], that variance is a
    pool and the comparison's own is tested beside it: p = min(p_pool / (1 - OWN_SHARE), p_own / OWN_SHARE).
    Looks after `lengths` have not happened. Each is a valid p-value for the whole sequence:
    P(p <= u) <= sum_n u * alpha_n / alpha = u.
    """
    shape = d.shape[:-1]
    p_better, p_worse, p_equiv = (np.full(shape, np.inf) for _ in range(3))

    def three(mean, v, n, f):
        pe = np.maximum(_one_sided_p(mean, v, n, f, margin, below=True),
                        _one_sided_p(mean, v, n, f, -margin, below=False))
        return _one_sided_p(mean, v, n, f, 0.0, below=True), _one_sided_p(mean, v, n, f, 0.0, below=False), pe

    for r in policy.looks():
        spend = policy.look_alpha(r)
        if spend <= 0.0 or r > d.shape[-1]:
            continue
        happened = lengths >= r
        n, mean, own = _look_stats(d, lengths, r)
        ps = three(mean, own, n, n - 1)
        if var is not None:
            pooled = three(mean, var[..., r - 1], n, df[..., r - 1])
            split = checked[..., r - 1]
            ps = [np.where(split, np.minimum(pp / (1.0 - OWN_SHARE), po / OWN_SHARE), pp) for pp, po in zip(pooled, ps)]
        scale = policy.alpha / spend
        for acc, p in zip((p_better, p_worse, p_equiv), ps):
            np.minimum(acc, np.where(happened, p * scale, np.inf), out=acc)
    return p_better, p_worse, p_equiv


def decide_batch(diffs: np.ndarray, margin: float = DEFAULT_MARGIN, policy: SeedPolicy = SeedPolicy(),
                 lengths: np.ndarray | None = None, var: np.ndarray | None = None, df: np.ndarray | None = None,
                 checked: np.ndarray | None = None) -> np.ndarray:
    """Verdict strings, shape (..., m), for paired differences of shape (..., m, seeds) in seed order.

    The same procedure as `decide` (which calls it), vectorised over leading replicate axes for simulation.
    NaN marks a missing (diverged) seed; lengths (..., m) is how many seeds each comparison has run so far
    (default: all), later entries are ignored. var, df, checked (the shape of diffs): the variance of a per-seed
    difference, its degrees of freedom, and whether it is a pool checked against the comparison's own (then both
    are tested, on shares of alpha), at the look with r seeds in entry r - 1 (pooled.py, Noise); None: each
    comparison's own sample variance on n - 1 df. Holm runs over the m comparisons of each replicate.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim < 2:
        raise ValueError(f"decide_batch needs shape (..., m, seeds), got {d.shape}")
    lengths = np.full(d.shape[:-1], d.shape[-1]) if lengths is None else np.asarray(lengths)
    if lengths.shape != d.shape[:-1]:
        raise ValueError(f"lengths must have shape {d.shape[:-1]}, got {lengths.shape}")
    if np.any(lengths > policy.max) or np.any(lengths > d.shape[-1]):
        raise ValueError(f"more seeds than the policy's max={policy.max} (or than the data): plan max accordingly")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    given = [x is not None for x in (var, df, checked)]
    if any(given) and not (all(given) and all(np.shape(x) == d.shape for x in (var, df, checked))):
        raise ValueError(f"var, df and checked go together, each of shape {d.shape}")
    p_better, p_worse, p_equiv = _sequential_p(d, lengths, margin, policy, var, df,
                                               None if checked is None else np.asarray(checked, dtype=bool))
    # Difference family: the 2m one-sided nulls (Holm over them controls wrong better/worse claims, sign
    # included, under any dependence). Equivalence family: the m TOST nulls |mu| >= margin.
    m = d.shape[-2]
    rejected = _holm(np.concatenate([p_better, p_worse], axis=-1), policy.alpha)
    better, worse = rejected[..., :m], rejected[..., m:]
    equivalent = _holm(p_equiv, policy.alpha)
    _, mean, _ = _look_stats(d, lengths, d.shape[-1])
    out = np.full(d.shape[:-1], UNDECIDED, dtype=object)
    # Both directions rejected (contradicting looks; at least one is an error already counted): the current sign.
    out[better & (~worse | (mean < 0))] = BETTER
    out[worse & (~better | (mean > 0))] = WORSE
    # Inside the margin wins over a significant sign: the difference is too small to matter either way.
    out[equivalent] = EQUIVALENT
    return out


# ---------------------------------------------------------------- one decision with its numbers

def _power(n: int, df: int, mean: float, std: float, margin: float, one_sided_alpha: float,
           equivalence: bool) -> float:
    """Power of the one-look t-test of n seeds on df degrees of freedom at true mean/std (noncentral t); TOST: the
    Bonferroni lower bound 1 - P(miss upper) - P(miss lower)."""
    crit = sps.t.ppf(1.0 - one_sided_alpha, df)
    if not equivalence:
        return sps.nct.sf(crit, df, np.sqrt(n) * abs(mean) / std)
    miss_hi = sps.nct.sf(-crit, df, np.sqrt(n) * (mean - margin) / std)
    miss_lo = sps.nct.cdf(crit, df, np.sqrt(n) * (mean + margin) / std)
    return max(0.0, 1.0 - miss_hi - miss_lo)


def _planned_alpha(policy: SeedPolicy, n: int) -> float:
    """Alpha spent at a look with n seeds: the policy's; past its max, the last look of the plan with max = n
    (for a fixed seed list, min == max, a fixed list of n)."""
    if n <= policy.max:
        return policy.look_alpha(n)
    plan = SeedPolicy(n if policy.min == policy.max else policy.min, n, policy.alpha, policy.rho)
    return plan.look_alpha(n)


def seeds_needed(mean: float, std: float, n: int, margin: float = DEFAULT_MARGIN, policy: SeedPolicy = SeedPolicy(),
                 m: int = 1, df: int | None = None, share: float = 1.0) -> int | None:
    """Smallest total seeds N > n at which the deciding test has POWER at the observed mean and std.

    |mean| >= margin: the one-sided difference test at look_alpha(N) / (2m); else TOST at look_alpha(N) / m
    (the first Holm step, so Holm and earlier looks only make it likelier: a conservative count). df: the
    variance's degrees of freedom now (None: the comparison's own, n - 1); at N seeds it has df + N - n, the
    least the N - n new seeds of the two groups add to any pool (a pooled variance gains more from the other
    groups: conservative again). Past the policy's max, the alpha of the plan extended to max = N. None if
    n < 2, std is 0 or not finite, or more than 10,000 seeds would be needed.
    """
    if n < 2 or not (math.isfinite(mean) and math.isfinite(std)) or std <= 0.0:
        return None
    df = n - 1 if df is None else df
    equivalence = abs(mean) < margin
    divisor = m if equivalence else 2 * m

    def power(k: int) -> float:
        a = share * _planned_alpha(policy, k) / divisor
        dof = df + k - n
        return float(_power(k, dof, mean, std, margin, a, equivalence)) if a > 0 and dof >= MIN_DF else 0.0

    lo = max(n + 1, policy.min)
    # Bracket by doubling, then the first N with enough power by bisection (power rises with N).
    hi = lo
    while power(hi) < POWER:
        if hi >= _MAX_SEEDS_NEEDED:
            return None
        lo, hi = hi + 1, min(2 * hi, _MAX_SEEDS_NEEDED)
    while lo < hi:
        mid = (lo + hi) // 2
        if power(mid) >= POWER:
            hi = mid
        else:
            lo = mid + 1
    return int(hi)


def decide(diffs: Mapping[str, Sequence[float | None]], margin: float = DEFAULT_MARGIN,
           policy: SeedPolicy = SeedPolicy(), noise: Mapping[str, Sequence[Noise | None]] | None = None,
           scale: float | None = None) -> dict[str, Verdict]:
    """Verdict per comparison (variant loss - baseline loss per seed, in the order the seeds were run).

    Holm across the dict's m comparisons. None/non-finite entries (diverged seeds) are skipped but still count
    as a seed run: the look with n seeds is the first n entries. More entries than policy.max is an error.
    noise: per comparison, the Noise of the look with r seeds in entry r - 1 (pooled.py; None: no estimate, no
    test at that look); without it, each comparison's own sample variance on n - 1 df ("cell"). scale: the
    experiment's largest |Δ|, for the rule that no interval wider than 10x it is shown (estimable.py); None:
    the largest |mean| among these comparisons.
    """
    names = list(diffs)
    if not names:
        return {}
    width = max(1, max(len(v) for v in diffs.values()))
    d = np.full((len(names), width), np.nan)
    for i, name in enumerate(names):
        for j, v in enumerate(diffs[name]):
            if _is_finite(v):
                d[i, j] = float(v)
    lengths = np.array([len(diffs[name]) for name in names])
    arrays = {}
    if noise is not None:
        arrays = {"var": np.full(d.shape, np.nan), "df": np.zeros(d.shape, dtype=int),
                  "checked": np.zeros(d.shape, dtype=bool)}
        for i, name in enumerate(names):
            for j, z in enumerate(noise.get(name, [])[:width]):
                if z is not None:
                    arrays["var"][i, j], arrays["df"][i, j], arrays["checked"][i, j] = z.var, z.df, z.checked
    verdicts = decide_batch(d, margin, policy, lengths, **arrays)
    values = {name: d[i][np.isfinite(d[i])] for i, name in enumerate(names)}
    if scale is None:
        scale = max((abs(float(x.mean())) for x in values.values() if x.size), default=0.0)
    m = len(names)
    out: dict[str, Verdict] = {}
    for i, name in enumerate(names):
        x = values[name]
        n, seeds = int(x.size), int(lengths[i])
        mean = float(x.mean()) if n else None
        look_alpha = policy.look_alpha(max(seeds, policy.min)) / m
        z, share, half = _shown(x, noise.get(name) if noise is not None else None, seeds, look_alpha)
        std = math.sqrt(z.var) if z is not None and math.isfinite(z.var) else None
        low = high = None
        if half is not None and seeds >= policy.min and delta_estimable(mean - half, mean + half, z.df,
                                                                        max(scale, margin)):
            low, high = mean - half, mean + half
        verdict = str(verdicts[i])
        # From a variance on fewer than MIN_DF df the seeds a decision needs are not estimable either (two seeds
        # agreeing by chance would promise a decision at the third): None, and the report says so.
        needed = (seeds_needed(mean, std, n, margin, policy, m, z.df, share) if verdict == UNDECIDED and n >= 2
                  and std is not None and z.df >= MIN_DF else None)
        out[name] = Verdict(verdict, n, mean, low, high, 1.0 - share * look_alpha, std, needed, margin,
                            None if z is None else z.df, None if z is None else z.source)
    return out


def _shown(x: np.ndarray, noise: Sequence[Noise | None] | None, seeds: int,
           look_alpha: float) -> tuple[Noise | None, float, float | None]:
    """The variance a comparison's numbers show at its current look (seeds run), its share of the look's alpha,
    and the half-width of its interval (None below MIN_DF). Beside a checked pool the comparison's own spread is
    a second test (OWN_SHARE): the narrower of the two intervals is shown, each at its own share, so that the
    shown interval covers with at least the look's confidence either way."""
    own = None
    if x.size >= 2:
        own = Noise(float(x.var(ddof=1)), int(x.size - 1), CELL, False)
    elif x.size == 1:
        own = Noise(math.nan, 0, CELL, False)
    given = noise[seeds - 1] if noise is not None and 0 < seeds <= len(noise) else None
    if noise is None:
        options = [(own, 1.0)]
    elif given is None:
        options = [(None, 1.0)]
    elif given.checked and given.source != CELL:
        options = [(given, 1.0 - OWN_SHARE), (own, OWN_SHARE)]
    else:
        options = [(given, 1.0 - OWN_SHARE if given.checked else 1.0)]

    def half(z: Noise | None, share: float) -> float | None:
        if z is None or z.df < MIN_DF or not math.isfinite(z.var) or x.size == 0:
            return None
        return float(sps.t.ppf(1.0 - share * look_alpha / 2.0, z.df)) * math.sqrt(z.var / x.size)

    widths = [(half(z, share), k) for k, (z, share) in enumerate(options)]
    bounded = [(w, k) for w, k in widths if w is not None]
    k = min(bounded)[1] if bounded else 0
    return options[k][0], options[k][1], widths[k][0]


# ---------------------------------------------------------------- how to read this

def method_text(margin: float, policy: SeedPolicy, m: int) -> str:
    """One paragraph for the report's "How to read this": the method and the error rate it guarantees."""
    a = f"{policy.alpha:.0%}" if round(policy.alpha * 100, 6).is_integer() else f"{policy.alpha:g}"
    plain = f"{1 - policy.alpha:.0%}"
    sequential = policy.min < policy.max
    if sequential:
        shares = ", ".join(f"{policy.look_alpha(n):.2g}" for n in policy.looks())
        later = ", more at the later looks where the tests have power" if policy.rho > 1 else ""
        seeds = (f"Seeds are added one at a time to undecided comparisons, from {policy.min} up to {policy.max}, "
                 "and the comparison is tested after each; so that looking repeatedly does not inflate the error "
                 f"rate, the {a} is split across the looks ({shares} at {policy.min} to {policy.max} seeds{later}), "
                 "and a test counts only if it passes at its look's share. ")
    else:
        seeds = (f"Every comparison has {policy.min} seed{'s' if policy.min > 1 else ''} and is tested once, "
                 f"spending all of the {a} error rate. ")
    holm = f"Holm's step-down procedure corrects for the {m} comparisons tested together. " if m > 1 else ""
    scope = " and ".join(([f"all {m} comparisons"] if m > 1 else []) + (["all looks"] if sequential else []))
    if scope:
        corrected = ", corrected for the comparisons" if m > 1 else ""
        intervals = (f"Intervals are at the confidence of the current look{corrected}, so they are wider than a "
                     f"plain {plain} interval. ")
    else:
        intervals = f"Intervals are plain {plain} t-intervals. "
    return (
        "Each variant is compared with the baseline seed by seed: the paired difference is its final validation "
        "loss minus the baseline's with the same seed (negative: the variant is better), which cancels the "
        "variation both share. A variant is better or worse when a t-test on the differences puts their mean below "
        f"or above 0, equivalent when two one-sided t-tests put it within ±{margin:g} nats (the equivalence margin; "
        "equivalent wins when both hold), and undecided otherwise. " + seeds + holm +
        f"The chance of any false better or worse (a wrong sign included){' across ' + scope if scope else ''} "
        f"is at most {a}, and separately the chance of calling equivalent a difference of {margin:g} nats or more "
        f"is at most {a}. " + intervals + "The noise each test sees through is estimated from the whole "
        "experiment: one model of the final loss per size (run group plus seed, every completed run), its residual "
        "variance pooled across the sizes unless a size's is larger than the others' (then that size's alone); a "
        "comparison whose own spread is larger than that keeps its own, and one whose own spread is smaller is "
        f"tested on it as well, with {OWN_SHARE:.0%} of the error rate (the pool gets the rest). Each comparison "
        "shows the degrees of freedom and the source of its variance. No verdict rests on a variance with fewer "
        "than 2 degrees of freedom, and no interval the data cannot bound is given as digits. Seeds needed is how "
        "many seeds would give 80% power to resolve the observed difference (or show equivalence) at the error "
        "rate spent there.")
