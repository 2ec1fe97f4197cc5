"""Every variant against its baseline: the verdict on the final loss and the compute multiplier.

compare() is what the runner calls after each round of seeds (to add seeds to the undecided comparisons, storing
as_json() in results.json) and what the report shows, so both read the same numbers. It reads only results.json's
records and the runs' metrics.json files; a missing or unreadable metrics file costs the multiplier of that seed,
never the comparison.

Noise: every completed run of every run group (A/A controls included) enters one model per experiment
(pooled.py): each comparison's variance, at each look, is pooled across sizes, its size's alone, or its own,
with its degrees of freedom (results.json "df", "variance").

Holm's family is the comparisons of one size (of a scaling sweep): each size is its own experiment, with its own
baseline. In a ladder (results.json "ladder": true) each rung is compared with the rung before it instead, the
family being all rungs of the size; cumulative() gives the report each rung against the first rung as well. An A/A
control's comparison with the run group it copies is a family of its own (m = 1 per size): the measured
false-positive check never costs the design's comparisons any alpha.

Not learned (learned.py): a pair where either run group has not learned (a completed seed not clearly below the
unigram floor) gets the verdict NOT_LEARNED, with its Δ point estimate but no interval, seeds_needed or multiplier;
it is left out of its Holm family (it costs the others no alpha), of the noise pool and of the scale behind the
estimable rule. The runner adds seeds only to undecided comparisons (post_sweep.undecided), so it adds none here:
more seeds cannot make a model learn, more steps can.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..load import COMPLETED, MISSING, Curve, Results, RunCurves, Variant, load_curves
from .design import design_noise
from .learned import Learning, learning
from .pooled import SOURCES, Noise
from .multipliers import Multiplier, combine_multipliers, compute_multiplier
from .verdicts import NOT_LEARNED, Verdict, decide

logger = logging.getLogger(__name__)

CurveMap = Mapping[tuple[str, int], RunCurves]


@dataclass(frozen=True)
class Comparison(Verdict):
    """A run group against the baseline of its size: a Verdict (verdicts.py) plus what it was compared with.

    baseline: the run group compared with (in a ladder, the previous rung; in cumulative(), the first rung).
    seeds: how many seeds the comparison has run (the look), n of them paired (both runs completed).
    multiplier: the baseline's training FLOPs to reach the variant's final loss over the variant's own FLOPs
    (> 1: the variant is the more compute-efficient), per seed then combined; None without usable curves.
    learned: (the variant's, the baseline's) Learning (learned.py); with either not learned the verdict is
    NOT_LEARNED (low, high, level, diff_std, df, variance, seeds_needed and multiplier None). In results.json:
    "learned": {"variant": true | false | null, "baseline": ..., "floor": the unigram val loss (the variant's, else
    the baseline's; null: not recorded), "margin": nats below it every completed seed must reach}.
    """

    baseline: str = ""
    size: str | None = None
    seeds: int = 0
    multiplier: Multiplier | None = None
    learned: tuple[Learning, Learning] | None = None

    def as_json(self) -> dict:
        m = self.multiplier
        return {"baseline": self.baseline, "verdict": self.verdict, "n": self.n, "seeds": self.seeds,
                "mean": self.mean, "low": self.low, "high": self.high, "estimable": self.estimable,
                "level": self.level, "equivalence_margin": self.margin, "diff_std": self.diff_std, "df": self.df,
                "variance": self.variance, "seeds_needed": self.seeds_needed,
                "compute_multiplier": None if m is None else {"mean": m.mean, "low": m.low, "high": m.high,
                                                              "n": len(m.per_seed), "estimable": m.estimable,
                                                              "extrapolated": m.extrapolated},
                "learned": None if self.learned is None else _learned_json(*self.learned)}


def _learned_json(ours: Learning, theirs: Learning) -> dict:
    return {"variant": ours.learned, "baseline": theirs.learned,
            "floor": ours.floor if ours.floor is not None else theirs.floor, "margin": ours.margin}


def paired_diffs(results: Results, variant: Variant, baseline: Variant) -> list[float | None]:
    """variant - baseline final val loss per seed, in seed order, through the last seed both have run (capped at
    the policy's max): a look is taken once its seeds are in. None where either run did not complete, or where
    one of them skipped a seed that a later seed has."""
    def ran(seed: int) -> bool:
        return all(r is not None and r.status != MISSING for r in (variant.run(seed), baseline.run(seed)))

    seeds = results.seeds[:max((i + 1 for i, s in enumerate(results.seeds) if ran(s)), default=0)]
    diffs: list[float | None] = []
    for seed in seeds:
        ours, theirs = variant.run(seed), baseline.run(seed)
        done = ours and theirs and ours.status == theirs.status == COMPLETED
        diffs.append(ours.final_val_loss - theirs.final_val_loss
                     if done and None not in (ours.final_val_loss, theirs.final_val_loss) else None)
    cap = results.seed_policy.max
    if len(diffs) > cap:
        logger.warning("%s: %d seeds run, more than the seed policy's max of %d: the first %d decide",
                       variant.name, len(diffs), cap, cap)
    return diffs[:cap]


def multiplier(val_curve: Callable[[Variant, int], Curve | None], variant: Variant, baseline: Variant,
               seeds: list[int]) -> Multiplier | None:
    """Per seed, the baseline's FLOPs to reach the variant's last val loss over the variant's FLOPs there.

    Both losses are the curves' val points (one fixed subset of validation batches), not final_val_loss (the
    whole split), so they are the same measure. A variant that ends below anything the baseline reached would
    need the baseline's curve extrapolated; then the same ratio is read off the variant's own curve instead
    (the baseline's FLOPs over the FLOPs the variant needed to reach the baseline's last loss), interpolated,
    which assumes the multiplier holds along the curve. None when no seed has both curves with token counts.
    """
    if not (variant.flops_per_token and baseline.flops_per_token):
        return None
    values, extrapolated = [], []
    for seed in seeds:
        ours, theirs = val_curve(variant, seed), val_curve(baseline, seed)
        if ours is None or theirs is None or ours.tokens is None or theirs.tokens is None or not ours.tokens[-1] > 0:
            continue
        curve = [(t * baseline.flops_per_token, loss) for t, loss in zip(theirs.tokens, theirs.loss) if t > 0]
        loss, flops = float(ours.loss[-1]), float(ours.tokens[-1]) * variant.flops_per_token
        value, flag = compute_multiplier(curve, loss, flops)
        if flag and curve and loss < min(v for _, v in curve):
            own = [(t * variant.flops_per_token, v) for t, v in zip(ours.tokens, ours.loss) if t > 0]
            inverse, inverse_extrapolated = compute_multiplier(own, curve[-1][1], curve[-1][0])
            if inverse and not inverse_extrapolated:
                value, flag = 1.0 / inverse, False
        values.append(value)
        extrapolated.append(flag)
    m = combine_multipliers(values, extrapolated)
    return m if m.mean is not None else None


def _seed_losses(results: Results, left_out: set[str] = frozenset()) -> np.ndarray:
    """(run groups, seeds through the policy's max) final val losses, NaN where a run did not complete or its
    group is left out (one that has not learned: its noise is not that of the models compared)."""
    seeds = results.seeds[:results.seed_policy.max]
    losses = np.full((len(results.variants), len(seeds)), np.nan)
    for g, v in enumerate(results.variants):
        if v.name in left_out:
            continue
        for k, seed in enumerate(seeds):
            r = v.run(seed)
            if r is not None and r.status == COMPLETED and r.final_val_loss is not None:
                losses[g, k] = r.final_val_loss
    return losses


def noise(results: Results, pairs: list[tuple[Variant, Variant]],
          left_out: set[str] = frozenset()) -> dict[str, list[Noise]]:
    """Per pair (by the variant's name), the Noise of its paired difference at the look with r seeds in entry
    r - 1, from every run group's completed runs but those of the groups ``left_out`` (pooled.py)."""
    index = {v.name: g for g, v in enumerate(results.variants)}
    sizes = list(dict.fromkeys(v.size for v in results.variants))
    losses = _seed_losses(results, left_out)
    var, df, src, checked = design_noise(losses, [sizes.index(v.size) for v in results.variants],
                                         [(index[v.name], index[base.name]) for v, base in pairs],
                                         range(1, losses.shape[1] + 1))
    return {v.name: [Noise(float(var[j, r]), int(df[j, r]), SOURCES[src[j, r]], bool(checked[j, r]))
                     for r in range(losses.shape[1])] for j, (v, _) in enumerate(pairs)}


def _compare_pairs(results: Results, run_dir: str | Path, pairs: list[tuple[Variant, Variant]],
                   curves: CurveMap | None) -> dict[str, Comparison]:
    """Comparison per (run group, the run group it is compared with), Holm across the pairs of one size (an A/A
    control's pair a family of its own)."""
    read: dict[tuple[str, int], RunCurves | None] = {}

    def val_curve(variant: Variant, seed: int) -> Curve | None:
        key = (variant.name, seed)
        if curves is not None:
            c = curves.get(key)
        else:
            if key not in read:
                read[key] = load_curves(run_dir, variant, variant.run(seed))
            c = read[key]
        return c.val if c is not None else None

    states = {v.name: learning(v) for v in results.variants}
    unlearned = {name for name, state in states.items() if state.not_learned}
    decided = [(v, base) for v, base in pairs if not {v.name, base.name} & unlearned]
    families: dict[tuple[str | None, bool], list[tuple[Variant, Variant]]] = {}
    for v, base in decided:
        families.setdefault((v.size, v.control is not None), []).append((v, base))
    diffs = {v.name: paired_diffs(results, v, base) for v, base in pairs}
    finite = [[x for x in diffs[v.name] if x is not None] for v, _ in decided]
    scale = max((abs(sum(x) / len(x)) for x in finite if x), default=0.0)  # the experiment's largest |Δ|
    noises = noise(results, decided, unlearned)
    out: dict[str, Comparison] = {}
    for members in families.values():
        names = [v.name for v, _ in members]
        verdicts = decide({n: diffs[n] for n in names}, results.margin, results.seed_policy,
                          {n: noises[n] for n in names}, scale)
        for v, base in members:
            paired = [s for s, d in zip(results.seeds, diffs[v.name]) if d is not None]
            out[v.name] = Comparison(**asdict(verdicts[v.name]), baseline=base.name, size=v.size, seeds=len(diffs[v.name]),
                                     multiplier=multiplier(val_curve, v, base, paired),
                                     learned=(states[v.name], states[base.name]))
    for v, base in pairs:
        if v.name not in out:
            out[v.name] = _not_learned(diffs[v.name], results.margin, v, base, (states[v.name], states[base.name]))
    return {v.name: out[v.name] for v in results.variants if v.name in out}


def _not_learned(diffs: list[float | None], margin: float, v: Variant, base: Variant,
                 states: tuple[Learning, Learning]) -> Comparison:
    """A pair where either side has not learned: its Δ point estimate, no test, no interval, no seeds needed."""
    x = [d for d in diffs if d is not None]
    return Comparison(NOT_LEARNED, len(x), sum(x) / len(x) if x else None, None, None, None, None, None, margin,
                      None, None, baseline=base.name, size=v.size, seeds=len(diffs), learned=states)


def compare(results: Results, run_dir: str | Path, curves: CurveMap | None = None) -> dict[str, Comparison]:
    """Comparison per run group that has a baseline (not the baseline itself), in results order; in a ladder,
    per rung after the first, against the previous rung of its size.

    curves: the runs' curves as the report loaded them (a run without curves absent), else each metrics.json
    is read as needed.
    """
    against = results.previous_rung if results.ladder else results.baseline_for
    pairs = [(v, base) for v in results.variants if (base := against(v)) is not None and base is not v]
    return _compare_pairs(results, run_dir, pairs, curves)


def cumulative(results: Results, run_dir: str | Path, curves: CurveMap | None = None) -> dict[str, Comparison]:
    """A ladder's cumulative view: each run group against the first rung (first arch) of its size, Holm across
    the rungs of one size. The runner adds seeds by compare()'s verdicts only, so these may stay undecided."""
    pairs = [(v, first) for v in results.variants if (first := results.first_rung(v)) is not None and first is not v]
    return _compare_pairs(results, run_dir, pairs, curves)
