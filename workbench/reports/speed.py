"""The "Speed (paired timing)" section: every variant's training step timed in one process, interleaved.

Each run's own tokens/s is measured at a different time, under whatever else the machine was doing, so it cannot
rank variants; the runner's paired timing (results.json "speed", from workbench/bench/variant_speed.py) alternates
the variants' steps in rounds and takes the ratio to the baseline round by round, so a load that slows both cancels.
"""

from __future__ import annotations

from . import fmt
from .analysis.estimable import not_estimable
from .doc import Block, Heading, Para, Table, text
from .load import Results, Variant, as_number


def method_text(results: Results) -> str | None:
    """One sentence for "How to read this" on the speed table's ratios; None without a paired timing."""
    speed = results.speed or {}
    if not isinstance(speed.get("variants"), dict):
        return None
    rounds = as_number(speed.get("rounds"))
    conf = as_number(speed.get("confidence")) or 0.95
    return (f"Step time vs baseline is timed, not trained: each variant's training step alternates with its baseline's "
            f"in one process over {f'{rounds:g} ' if rounds else ''}rounds, and the ratio is the geometric mean of the "
            f"per-round time ratios with a {conf:.0%} t-interval on their logs over the rounds (not over seeds), "
            "given only from 3 rounds and when it spans at most 100x.")


def _ratio(entry: dict, rounds: float | None) -> str:
    """'1.120x [1.080, 1.160], slower' (time ratio: above 1 is slower); 'no clear difference' when the CI holds 1;
    '1.120x (not estimable at n = 2 rounds)' where the rounds cannot bound it (analysis/estimable.py)."""
    ratio, low, high = (as_number(entry.get(k)) for k in ("ratio", "low", "high"))
    if ratio is None:
        return fmt.DASH
    if low is None or high is None:
        return f"{ratio:.3f}x ({not_estimable(None if rounds is None else int(rounds))}{' rounds' if rounds else ''})"
    reading = "slower" if low > 1 else "faster" if high < 1 else "no clear difference"
    return f"{ratio:.3f}x [{low:.3f}, {high:.3f}], {reading}"


def _note(entry: dict) -> str:
    notes = entry.get("notes") if isinstance(entry.get("notes"), list) else []
    skipped = [f"not timed: {entry['skipped']}"] if entry.get("skipped") else []
    return "; ".join(str(n) for n in skipped + notes)


def speed_section(results: Results, order: list[Variant]) -> list[Block]:
    """The table and its method; one line where a rebuild could not keep it (results.json "speed": {"lost"}); []
    when results.json has no paired timing."""
    speed = results.speed or {}
    timed = speed.get("variants")
    if speed.get("lost"):
        return [Heading(2, "Speed (paired timing)"), Para([text(str(speed["lost"]).rstrip(".") + ".")])]
    if not isinstance(timed, dict) or not timed:
        return []
    bases = {v.name for v in order if results.baseline_for(v) is v}
    names = [v.name for v in order if v.name in timed] + [n for n in timed if n not in {v.name for v in order}]
    rows = []
    for name in names:
        entry = timed[name] if isinstance(timed[name], dict) else {}
        base = entry.get("baseline")
        own = name in bases or base in (None, name)  # a baseline is timed against itself
        ms, tps = as_number(entry.get("ms_per_step")), as_number(entry.get("tokens_per_sec"))
        rows.append([name + (" (baseline)" if name in bases else ""), fmt.DASH if ms is None else f"{ms:.2f}",
                     fmt.human(tps), fmt.DASH if own else _ratio(entry, as_number(speed.get("rounds"))),
                     fmt.DASH if own else str(base),
                     _note(entry)])
    conf = as_number(speed.get("confidence")) or 0.95
    device = speed.get("device")
    device = ", ".join(map(str, device)) if isinstance(device, list) else device
    method = str(speed.get("method") or "").strip().rstrip(".")
    facts = [method[:1].upper() + method[1:] + "." if method else "",
             f"Timed on {device}." if device else "",
             "Stopped early by its time budget." if speed.get("stopped_by_budget") else ""]
    return [Heading(2, "Speed (paired timing)"),
            Table(["Variant", "ms / step", "Tokens/s", f"Step time vs baseline ({conf:.0%} CI)", "Baseline", "Note"],
                  rows, right={1, 2, 3}),
            Para([text(" ".join([f for f in facts if f] + [
                "Step time vs baseline is the variant's step time over its baseline's (above 1x: slower), a "
                "geometric mean over the rounds with its confidence interval; the difference is clear when the "
                "interval excludes 1. The steps are timed in one process, interleaved, so the machine's load falls "
                "on every variant alike: rank variants' speed by this table, not by the per-run wall-clock "
                "tokens/s."]))])]
