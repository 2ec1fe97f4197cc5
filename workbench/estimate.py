"""What an experiment will train before it starts: how many runs, and a rough CPU time for them.

Runs: an untuned experiment trains every run group at its first ``seed_policy["min"]`` seeds, up to
``max`` with sequential rounds. A tuned one (``config/tune.py``) trains every configured grid point of
every cell at the tuning seeds, the declared extension points only while an optimum sits on that
edge, and the verdict seeds at each cell's optimum, where its tuning runs already count.

Time: a run's training FLOPs (the steps it trains x batch x seq_len x ``flops_per_token``, which counts
forward and backward) over a throughput measured on one machine, plus a fixed overhead per run. A WSD horizon
branch trains only its cool-down (``horizon_sweep``), assumed branched wherever its family trains together
(a verdict seed whose horizons tune to different optima trains from scratch instead). An estimate only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .horizon_sweep import trained_steps

# From the main job recorded in docs/main-job.md (2026-12-06, 2-core AMD EPYC with avx512_bf16, torch
# CPU, fp32; `python -m workbench run experiments/ablate_norm.yaml`): 4 runs of 200 steps x 32 x 128 tokens
# of LLaMA tiny (7,074,816 FLOPs/token) in 258 s, training at 15.1-16.2k tokens/s. Checked 2026-12-06 on
# the same machine class: `... --out /tmp/est_run 'seeds=[0]' train.steps=60` trained at 14.6-15.3k
# tokens/s until other jobs came to share the cores (which made its wall time unusable).
MEASURED_FLOPS = 110e9  # training FLOP/s: 15.6k tokens/s x 7.07 MFLOP/token
RUN_OVERHEAD_S = 12.0  # per run: (258 s - 4 x 819k tokens / 15.6k tokens/s) / 4 (start-up, evaluations, reports, speed timing)
MEASURED_ON = "a 2-core CPU like docs/main-job.md's"


@dataclass(frozen=True)
class Planned:
    """Runs of one run group: ``first`` always train, up to ``most`` (edge extensions, sequential seeds)."""

    variant: object  # a config.experiment.Variant
    kind: str  # "tuning" or "verdict" (an untuned experiment's runs are all "verdict")
    first: int
    most: int


def planned_runs(experiment) -> list[Planned]:
    """Every run group's share of the runs ``workbench run`` trains."""
    low, high = experiment.seed_policy["min"], experiment.seed_policy["max"]
    if experiment.tune is None:
        return [Planned(v, "verdict", low, high) for v in experiment.variants.values()]
    tuning = len(experiment.tuning_seeds())
    out, cells = [], {}
    for variant in experiment.variants.values():
        own = tuning if variant.point.tuning else 0  # a transfer point (tune.at: smallest) runs no tuning seed
        out.append(Planned(variant, "tuning", own if variant.point.step == 0 else 0, own))
        cells.setdefault(variant.cell, (variant.untuned(), own))
    # the verdict seeds run at each cell's optimum, unknown before tuning: its untuned form stands in
    return out + [Planned(v, "verdict", max(0, low - done), max(0, high - done)) for v, done in cells.values()]


def training_flops(variant, per_token: dict | None = None, steps: int | None = None) -> float:
    """Training FLOPs of one run: steps (``train.steps`` unless given) x tokens per step x FLOPs per token
    (forward + backward). ``per_token`` caches FLOPs/token by model config (grid points of train.lr share one model)."""
    train = variant.train
    steps = train.steps if steps is None else steps
    key = repr((sorted(variant.model.items()), variant.data["vocab_size"], train.seq_len))
    cache = {} if per_token is None else per_token
    if key not in cache:
        cache[key] = variant.meta_model().flops_per_token(train.seq_len)
    return float(steps) * train.batch_size * train.seq_len * cache[key]


def run_seconds(variant, per_token: dict | None = None, steps: int | None = None) -> float:
    """Estimated wall seconds of one run (of ``steps`` trained steps) on the measured machine."""
    return RUN_OVERHEAD_S + training_flops(variant, per_token, steps) / MEASURED_FLOPS


@dataclass(frozen=True)
class Estimate:
    tuning: int
    verdict: int
    most: int
    seconds: float  # the runs that always train
    most_seconds: float

    @property
    def runs(self) -> int:
        return self.tuning + self.verdict


def estimate(experiment) -> Estimate:
    """Run counts and estimated CPU seconds, at least and at most."""
    plan = planned_runs(experiment)
    cost: dict[str, float] = {}
    per_token: dict = {}
    trained = {name: steps for kind in ("tuning", "verdict")  # each stage's horizons branch off its own trunks
               for name, steps in trained_steps(p.variant for p in plan if p.kind == kind).items()}
    for p in plan:
        if p.most and p.variant.name not in cost:
            cost[p.variant.name] = run_seconds(p.variant, per_token, trained[p.variant.name])
    return Estimate(tuning=sum(p.first for p in plan if p.kind == "tuning"),
                    verdict=sum(p.first for p in plan if p.kind == "verdict"),
                    most=sum(p.most for p in plan),
                    seconds=sum(p.first * cost.get(p.variant.name, 0.0) for p in plan),
                    most_seconds=sum(p.most * cost.get(p.variant.name, 0.0) for p in plan))
