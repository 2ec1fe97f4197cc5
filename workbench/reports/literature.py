"""The "Literature check": each verdict against the published result it reproduces (results.json "reference").

A reference gives published values (its own metric, lower is better) and claims: the published direction of a
variant against the experiment's baseline. Where a variant has a value but no claim, the direction is the sign of
its published effect, value - the baseline's value. A run group is checked against its arch's entry, so every size
of a scaling sweep is checked. A comparison whose models have not learned (learned.py) makes no claim to check.
Anything short of agrees carries a note on scale: a tiny model trained briefly may rank variants differently from
the published 100M+ parameter models trained on billions of tokens.
"""

from __future__ import annotations

from . import fmt
from .analysis.comparisons import Comparison
from .doc import Block, Heading, Para, Table, text
from .load import COMPLETED, Results, as_number
from .analysis.verdicts import BETTER, EQUIVALENT, NOT_LEARNED, UNDECIDED, WORSE

AGREES, DISAGREES = "agrees", "disagrees"
DIRECTIONS = (BETTER, WORSE, EQUIVALENT)


def _mapping(reference: dict, key: str) -> dict:
    return reference[key] if isinstance(reference.get(key), dict) else {}


def published(reference: dict, name: str, baseline: str | None) -> tuple[float | None, str | None, float | None, bool]:
    """(value, direction, effect, stated) of one variant: stated is False when the direction comes from the values."""
    values, claims = _mapping(reference, "values"), _mapping(reference, "claims")
    value, base = as_number(values.get(name)), as_number(values.get(baseline)) if baseline else None
    effect = value - base if value is not None and base is not None else None
    claim = claims.get(name) if claims.get(name) in DIRECTIONS else None
    if claim is not None or effect is None:
        return value, claim, effect, True
    return value, BETTER if effect < 0 else WORSE if effect > 0 else EQUIVALENT, effect, False


def agreement(claim: str | None, effect: float | None, ours: Comparison | None) -> str:
    """agrees / disagrees / undecided (our verdict is) / not learned yet (no claim of ours to check); our
    equivalent against a published direction agrees only when the published effect is itself within the
    equivalence margin."""
    if claim is None or ours is None:
        return fmt.DASH
    if ours.verdict in (UNDECIDED, NOT_LEARNED):
        return ours.verdict
    if ours.verdict == claim:
        return AGREES
    if ours.verdict == EQUIVALENT and effect is not None and abs(effect) < ours.margin:
        return AGREES
    return DISAGREES


def literature_section(results: Results, comparisons: dict[str, Comparison]) -> list[Block]:
    """One row per run group the reference speaks about (not the baseline); [] without a reference."""
    ref = results.reference
    if not ref:
        return []
    named = set(_mapping(ref, "values")) | set(_mapping(ref, "claims"))
    metric = str(ref.get("metric") or "published value")
    rows = []
    for v in results.variants:
        key = v.name if v.name in named else v.arch if v.arch in named else None
        if key is None or results.baseline_for(v) is v:
            continue
        value, claim, effect, stated = published(ref, key, results.baseline)
        c = comparisons.get(v.name)
        direction = fmt.DASH if claim is None else claim + (f", {effect:+.4g}" if effect is not None else "") + (
            "" if stated else " (from the values)")
        rows.append([v.name, fmt.DASH if value is None else f"{value:.4g}", direction,
                     c.verdict if c else fmt.DASH, fmt.delta(c) if c else fmt.DASH,
                     agreement(claim, effect, c)])
    if not rows:
        return []
    base_value = as_number(_mapping(ref, "values").get(results.baseline))
    sentences = [f"Source: {ref.get('source') or 'not given'}.", str(ref.get("note") or ""),
                 f"Published values are {metric}; lower is better."
                 + (f" The baseline's is {base_value:.4g}." if base_value is not None else ""),
                 "Where the source states no direction, it is the sign of the variant's value minus the baseline's.",
                 "Agrees: our verdict has the published direction.",
                 "Undecided: our verdict is, so the check waits for more seeds.",
                 "Not learned yet: a model has not learned, so we make no claim to check.",
                 f"Our equivalent agrees with a published better or worse only when the published effect is itself "
                 f"within the ±{results.margin:g} equivalence margin."]
    if any(row[-1] not in (AGREES, fmt.DASH) for row in rows):
        sentences.append(scale_note(results))
    return [Heading(2, "Literature check"),
            Table(["Variant", f"Published {metric}", "Published vs baseline", "Our verdict", "Our Δ val loss",
                   "Agreement"], rows, right={1, 4}),
            Para([text(" ".join(filter(None, sentences)))])]


def scale_note(results: Results) -> str:
    """Why a check short of agrees is no refutation: our largest model and training run against the published."""
    params = max((v.params for v in results.variants if v.params), default=None)
    tokens = max((r.train_tokens for v in results.variants for r in v.runs
                  if r.status == COMPLETED and r.train_tokens), default=None)
    ours = " and ".join(filter(None, [params and f"at most {fmt.human(params)} parameters",
                                      tokens and f"at most {fmt.human(tokens)} training tokens"]))
    return (f"On scale: our models are tiny and briefly trained{f' ({ours})' if ours else ''}, while published "
            "results come from models of 100M parameters or more trained on billions of tokens. An effect can change "
            "size or sign between the two, so a disagreement here is a result at this scale, not a refutation.")
