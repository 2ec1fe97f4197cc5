"""Has a run group learned anything? Its final validation loss, seed by seed, against the unigram floor.

The floor is results.json's per-variant ``data.unigram_val_loss`` (data/pipeline.py): the validation loss, in
nats/token, of the add-one-smoothed unigram of the training split, which is what a model scores that has learned
only how often each token occurs. A run group has learned when every completed seed's final val loss is at least
MARGIN below its floor; it has not learned yet when some completed seed is not; whether it has learned is unknown
(None) when results.json records no floor or the group has no completed seed, and the report says so instead of
guessing.

MARGIN = 0.1 nats (a perplexity 10% below the unigram's) because it is 2.5 times the seed-to-seed std of a run's
final loss we measure (0.040 and 0.041 for the main job's two variants), so a group at the floor within its noise, or a
model better than the add-one-smoothed unigram only by estimating token frequencies without the smoothing, is never
called learned, while anything that learned context is far past it (the main job: 4.26 against a floor of 6.36).
A 12-step run (6.70 against 6.36) has not learned. No verdict is drawn between two run groups when either has
not learned (comparisons.py): their difference measures how far each got from initialisation, not the
architecture, and more seeds cannot change that; more steps can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from ..load import COMPLETED, Variant, as_number
from .verdicts import NOT_LEARNED

MARGIN = 0.1  # nats below the unigram floor that every completed seed must reach


@dataclass(frozen=True)
class Learning:
    """Whether one run group has learned: learned None when unknown (no floor recorded, or no completed seed);
    floor the unigram val loss (None: not recorded); worst the highest final val loss among its completed seeds
    (None: none)."""

    learned: bool | None
    floor: float | None
    worst: float | None
    margin: float = MARGIN

    @property
    def not_learned(self) -> bool:
        """True only when known not to have learned (an unknown floor decides nothing)."""
        return self.learned is False

    def as_json(self) -> dict:
        return {"learned": self.learned, "floor": self.floor, "worst": self.worst, "margin": self.margin}


def has_learned(losses: Iterable[float], floor: float | None, margin: float = MARGIN) -> bool | None:
    """Whether every final val loss is at least ``margin`` below ``floor``; None with no floor or no loss."""
    values = [float(x) for x in losses if x is not None]
    if floor is None or not math.isfinite(floor) or not values:
        return None
    return all(math.isfinite(x) and x <= floor - margin for x in values)


def learning(variant: Variant) -> Learning:
    """The run group's Learning from its completed runs and its recorded unigram floor."""
    floor = as_number(variant.data.get("unigram_val_loss"))
    losses = [r.final_val_loss for r in variant.runs if r.status == COMPLETED and r.final_val_loss is not None]
    return Learning(has_learned(losses, floor), floor, max(losses) if losses else None)


def learned_text(state: Learning) -> str:
    """How the report says it: 'learned (worst seed 4.3185, floor 6.3646)', 'not learned yet: worst seed 6.6966,
    not 0.1 below the unigram floor 6.3646; train more steps', 'unknown: no unigram floor recorded'."""
    if state.learned is None:
        return ("unknown: no unigram floor recorded" if state.floor is None else
                "unknown: no completed run")
    where = f"worst seed {state.worst:.4f}, unigram floor {state.floor:.4f}"
    if state.learned:
        return f"learned ({where})"
    return f"{NOT_LEARNED} ({where}: not {state.margin:g} nats below it); train more steps"
