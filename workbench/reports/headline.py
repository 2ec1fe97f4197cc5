"""The report's first words: one sentence per compared variant, the answer before anything else.

"layernorm vs rmsnorm: undecided — Δ (nats/token) -0.0285 (not estimable at n = 2), compute multiplier 1.09x (not
estimable at n = 2), 2 seeds." The numbers are the results table's, formatted by fmt. A comparison where a side has
not learned (analysis/learned.py) gets no verdict: its sentence names the side, its final loss against the unigram
floor, and what to change.
"""

from __future__ import annotations

from . import fmt
from .analysis.comparisons import Comparison
from .analysis.verdicts import NOT_LEARNED
from .doc import Bullets, Span, bold, text
from .load import Results, Variant


def compared(results: Results, order: list[Variant], comparisons: dict[str, Comparison]) -> list[tuple[Variant, Comparison]]:
    """The comparisons the report opens on, in table order: every variant's against its baseline (a ladder's rung
    against the rung before), A/A controls left to their own section."""
    return [(v, comparisons[v.name]) for v in order if v.name in comparisons and v.control is None]


def _seeds(c: Comparison) -> str:
    return f"{c.n} seed{'s' * (c.n != 1)}" + (f" paired of {c.seeds} run" if c.n != c.seeds else "")


def _what_to_change(results: Results, variant: Variant) -> str:
    """The key that trains longer: the budget's where the experiment has one, else train.steps, with its value."""
    if results.budget:
        (kind, value), = results.budget.items()
        return f"raise budget.{kind} (now {value:g}) so that both train longer"
    train = variant.config.get("train") if isinstance(variant.config.get("train"), dict) else {}
    steps = train.get("steps")
    return "raise train.steps" + (f" (now {steps})" if isinstance(steps, int) else "") + " so that both train longer"


def _not_learned(results: Results, v: Variant, c: Comparison) -> list[Span]:
    """Which side has not learned (comparisons.py sets c.learned on every NOT_LEARNED comparison), its final loss
    against the floor, and what to change; no Δ: it measures how far each got from initialisation."""
    behind = [(name, s) for name, s in zip((v.name, c.baseline), c.learned) if s.not_learned]
    who = (f"neither {behind[0][0]} nor {behind[1][0]} has" if len(behind) == 2 else f"{behind[0][0]} has not")
    ends = " and ".join(f"{name} ends at {fmt.number(s.worst)}" for name, s in behind)
    state = behind[0][1]
    return [text(f"{v.name} vs {c.baseline}: "), bold(NOT_LEARNED),
            text(f" — {who} learned more than token frequencies: {ends} (worst seed), not {state.margin:g} nats below "
                 f"the unigram floor {fmt.number(state.floor)}; no verdict ({_seeds(c)}). To compare them, "
                 f"{_what_to_change(results, v)}.")]


def sentence(results: Results, v: Variant, c: Comparison) -> list[Span]:
    """The one sentence on a comparison: verdict, Δ with its interval (or why none), multiplier, seeds."""
    if c.verdict == NOT_LEARNED:
        return _not_learned(results, v, c)
    multiplier = f", compute multiplier {fmt.multiplier(c.multiplier)}" if c.multiplier is not None else ""
    return [text(f"{v.name} vs {c.baseline}: "), bold(c.verdict),
            text(f" — Δ (nats/token) {fmt.delta(c)}{multiplier}, {_seeds(c)}.")]


def headline(results: Results, order: list[Variant], comparisons: dict[str, Comparison]) -> list[Bullets]:
    """The sentences as one list ([] without a comparison: no baseline, or nothing run yet)."""
    pairs = compared(results, order, comparisons)
    return [Bullets([sentence(results, v, c) for v, c in pairs], role="headline")] if pairs else []
