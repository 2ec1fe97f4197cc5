"""Horizon branching: a WSD steps sweep trains each variant's longest horizon, and of the shorter ones only
their cool-downs.

Run groups whose resolved configs differ only in ``train.steps``, under ``train.schedule: wsd``, form a
horizon family (``sweep: {train.steps: [100, 200, 400]}`` makes one per variant, or per grid point of a tuned
one). At one seed they follow one trajectory until each one's cool-down begins (``config.schedule``), so:

- every run of a family keeps a checkpoint at the decay start of each shorter member, and evaluates up to
  there wherever that member's own run would (``training.branch``);
- within each round the runner trains (a tuning round, the first seeds, each added seed) a family's runs
  longest first, and a run another process is training holds back the shorter runs of its family;
- a shorter run starts from a longer one's checkpoint at its decay start and trains only its cool-down,
  into its own run folder and record, which name the run it branched from (``branched_from``,
  ``branch_step``, ``trained_steps``); a kill resumes it from its own checkpoints.

A run whose longer family members hold no checkpoint at its decay start (none trained in this round, one
failed or diverged before that step, or finished before the sweep had this horizon) trains from scratch:
the same result, at the full cost, and a log line says so. With ``[100, 200, 400]`` and ``cooldown: 0.2``
that is 400 + 40 + 20 = 460 steps per variant and seed instead of 700.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .config.schedule import decay_start
from .run_folder import RunFolder


def family_key(variant) -> str | None:
    """What a horizon family's run groups share: the resolved config but train.steps; None unless WSD."""
    if variant.train.schedule != "wsd":
        return None
    config = variant.to_dict()
    del config["train"]["steps"]
    return json.dumps(config, sort_keys=True, default=str)


def families(variants: Iterable) -> dict[str, list]:
    """Each run group of a horizon family (two or more distinct train.steps) -> its family, longest first."""
    by_key: dict[str, list] = {}
    for variant in variants:
        key = family_key(variant)
        if key is not None:
            by_key.setdefault(key, []).append(variant)
    out = {}
    for members in by_key.values():
        if len({v.train.steps for v in members}) > 1:
            ordered = sorted(members, key=lambda v: -v.train.steps)
            out.update({v.name: ordered for v in members})
    return out


def trained_steps(variants: Iterable) -> dict[str, int]:
    """The steps each run group trains itself when all of ``variants`` train at one seed: a run with a longer
    run in its family only its cool-down, every other run its steps."""
    variants = list(variants)
    found = families(variants)
    out = {}
    for v in variants:
        longer = any(m.train.steps > v.train.steps for m in found.get(v.name, ()))
        out[v.name] = v.train.steps - (decay_start(v.train.steps, v.train.cooldown) if longer else 0)
    return out


def family_costs(variants: Iterable) -> list[tuple[list[int], int, int]]:
    """Per horizon family among ``variants``: (its horizons, longest first; the steps it trains per seed; the
    steps its runs would train as separate runs)."""
    variants = list(variants)
    trained, out, seen = trained_steps(variants), [], set()
    for members in families(variants).values():
        if id(members) not in seen:
            seen.add(id(members))
            out.append(([m.train.steps for m in members], sum(trained[m.name] for m in members),
                        sum(m.train.steps for m in members)))
    return out


class Horizons:
    """The horizon families of one experiment, for the runner: the order runs train in, and each run's place."""

    def __init__(self, experiment, folder: RunFolder):
        self.family = families(experiment.variants.values())
        self.steps = {n: v.train.steps for n, v in experiment.variants.items()}
        self.folder = folder

    def order(self, plan: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """``plan`` with each family's runs at one seed longest first, in the places the plan gives them."""
        places: dict[tuple, list[int]] = {}
        for i, (name, seed) in enumerate(plan):
            family = self.family.get(name)
            places.setdefault((family[0].name if family else name, seed), []).append(i)
        out = list(plan)
        for where in places.values():
            for i, run in zip(where, sorted((plan[i] for i in where), key=lambda r: -self.steps[r[0]])):
                out[i] = run
        return out

    def waits(self, name: str, seed: int, held: list[tuple[str, int]]) -> bool:
        """Whether a longer run of ``name``'s family at ``seed`` is among ``held`` (another process trains it):
        then ``name`` waits for it rather than train from scratch now."""
        return any((m.name, seed) in held for m in self.family.get(name, ()) if m.train.steps > self.steps[name])

    def horizon(self, name: str, seed: int):
        """``name``'s ``training.branch.Horizon`` at ``seed`` (imported here: Lightning only when training)."""
        from .training.branch import Horizon

        members = self.family.get(name, ())
        mine = self.steps[name]
        return Horizon(shorter=tuple(m.train for m in members if m.train.steps < mine),
                       trunks=tuple((m.name, self.folder.checkpoints(m.name, seed)) for m in members if m.train.steps > mine))
