"""``workbench show``: what an experiment will train, read as a comparison.

The baseline in full, with the sizes the config leaves to a rule resolved (K/V heads, head size, FFN
width); then each variant as only what differs from its baseline, with its parameters and FLOPs/token
against the baseline's. ``--full`` lists every key of every variant instead. ``show`` skips the machine
checks (``workbench.config.machine``): what training needs beyond a CPU is one line, and whether this
machine has it. Then how many runs ``run`` trains (for a WSD steps sweep, how many steps: its shorter horizons
branch off the longest, ``workbench.horizon_sweep``) and a rough CPU time (``workbench.estimate``). A tuned
experiment shows each variant once, at its own value, with its grid on a ``tune:`` line (with ``at: smallest``,
which sizes train at which smaller size's optimum). A μP / CompleteP variant says its base shape on a line of
its own, and whether the base was resolved from the smallest size (``config/base_shape.py``).
"""

from __future__ import annotations

import dataclasses

from . import estimate as est
from .config.base_shape import RESOLVED
from .config.machine import machine_needs, machine_problems
from .config.specs import format_value
from .horizon_sweep import family_costs

WIDTH = 100


def _value(value) -> str:
    return format_value(value) if isinstance(value, dict) else str(value)


def resolved_model(variant) -> dict[str, str]:
    """The model keys as shown: a component spec as one value, and the sizes a config may leave to a
    rule (``n_kv_heads``, ``head_dim``, ``ffn_hidden_dim``: None) resolved as the model builds them."""
    config = variant.transformer_config()
    kv = config.n_kv_heads
    layout = "MHA" if kv == config.n_heads else "MQA" if kv == 1 else f"GQA, {config.n_heads // kv} query heads per K/V head"
    rule = "GLU rule: 2/3 x 4 x dim" if config.is_glu else "4 x dim"
    derived = {"n_kv_heads": f"{kv} ({'= n_heads, ' if 'n_kv_heads' in config.derived else ''}{layout})",
               "head_dim": f"{config.head_dim}{' (dim / n_heads)' if 'head_dim' in config.derived else ''}",
               "ffn_hidden_dim": f"{config.ffn_hidden_dim}{f' ({rule})' if 'ffn_hidden_dim' in config.derived else ''}"}
    return {k: derived.get(k, _value(v)) for k, v in variant.model.items()}


def sections(variant) -> dict[str, dict[str, str]]:
    """``{"model": {...}, "data": {...}, "train": {...}}`` of display strings."""
    own = variant.to_dict()
    return {"model": resolved_model(variant), **{s: {k: _value(v) for k, v in own[s].items()} for s in ("data", "train")}}


def flat_config(variant) -> dict[str, str]:
    """``{"model.norm": "rmsnorm", "train.lr": "0.003", ...}`` as ``sections`` shows them."""
    return {f"{section}.{key}": value for section, values in sections(variant).items() for key, value in values.items()}


def _wrapped(prefix: str, items: list[str]) -> list[str]:
    """``prefix`` + the comma-separated items in lines of at most WIDTH characters, never splitting an item."""
    lines, line = [], prefix
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if line != prefix and len(line) + 1 + len(piece) > WIDTH:
            lines.append(line)
            line = " " * len(prefix) + piece
        else:
            line += ("" if line == prefix else " ") + piece
    return lines + [line]


def _listing(variant) -> list[str]:
    return [line for section, values in sections(variant).items()
            for line in _wrapped(f"  {section}: ", [f"{k}={v}" for k, v in values.items()])]


def _header(name: str, info: dict, note: str = "") -> str:
    return (f"== {name} =={note}  params {info['params']:,} (non-embedding {info['non_embedding_params']:,})  "
            f"FLOPs/token {info['flops_per_token']:,}")


def parametrization_line(variant) -> str | None:
    """``  parametrization: mup, base_dim 32 (the smallest size's dim; width x2)``; None under standard."""
    model = variant.model
    scheme = model.get("parametrization", "standard")
    if scheme == "standard":
        return None
    parts, ratios = [], []
    for base, shape, what in (("base_dim", "dim", "width"), ("base_layers", "n_layers", "depth"),
                              ("base_head_dim", "head_dim", None)):
        if base not in model or (base == "base_layers" and scheme != "completep") or (what is None and model[base] is None):
            continue
        value = model[base]
        resolved = RESOLVED in variant.origins.get(f"model.{base}", ("", ""))[1]
        parts.append(f"{base} {value if value is not None else f'= {shape} (its own base)'}"
                     + (f" (the smallest size's {shape})" if resolved else ""))
        if value and what:
            ratios.append(f"{what} x{model[shape] / value:g}")
    return f"  parametrization: {scheme}, " + ", ".join(parts) + (f"; {', '.join(ratios)}" if ratios else "")


def _relative(value: int, base: int) -> str:
    return f"{(value - base) / base:+.1%}" if base else "n/a"


def _reference(experiment, variant):
    """What ``variant`` is shown against: its baseline (of its size), the previous rung of a ladder, or,
    for the baseline of a later size, the first variant shown in full; None: show it in full."""
    ordered = list(experiment.variants.values())
    same = [v for v in ordered if v.size == variant.size]
    if experiment.ladder:
        first = ordered[0]
        base = same[same.index(variant) - 1] if same.index(variant) else first
    else:
        first = next((v for v in ordered if v.arch == experiment.baseline), ordered[0])
        base = next((v for v in same if v.arch == experiment.baseline), first)
    if base is variant:
        base = first
    return None if base is variant else base


def full_lines(experiment) -> list[str]:
    """Every key of every variant (``show --full``)."""
    lines = []
    for name, variant in experiment.variants.items():
        info = variant.sizes()
        lines += ["", _header(name, info)]
        lines += _listing(variant)
    return lines


def diff_lines(experiment) -> list[str]:
    """The baseline in full, then every other variant as what differs from its reference (``_reference``)."""
    infos = {n: v.sizes() for n, v in experiment.variants.items()}
    lines = []
    for name, variant in experiment.variants.items():
        base = _reference(experiment, variant)
        info = infos[name]
        scheme = parametrization_line(variant)
        if base is None:
            lines += ["", _header(name, info, " (first rung)" if experiment.ladder else " (baseline)")]
            lines += ([scheme] if scheme else []) + _listing(variant)
            continue
        b_info = infos[base.name]
        note = " (baseline)" if variant.arch == experiment.baseline and not experiment.ladder else ""
        lines += ["", _header(name, info, note) + f"  (vs {base.name}: params {_relative(info['params'], b_info['params'])}, "
                  f"FLOPs/token {_relative(info['flops_per_token'], b_info['flops_per_token'])})"]
        lines += [scheme] if scheme else []
        mine, theirs = flat_config(variant), flat_config(base)
        changed = [k for k in mine if mine[k] != theirs.get(k)] + [k for k in theirs if k not in mine]
        for key in changed:
            lines.append(f"  {key}: {mine.get(key, '(unset)')}   ({base.name}: {theirs.get(key, '(unset)')})")
        if not changed:
            lines.append(f"  (the same config as {base.name})")
    return lines


def seeds_text(experiment) -> str:
    """The seeds as the config means them: a list, or a sequential policy (``{min: 2, max: 4}``: two
    seeds, then up to four while the verdict is undecided), not the most it may train."""
    low, high = experiment.seed_policy["min"], experiment.seed_policy["max"]
    if low == high:
        return str(experiment.seeds)
    return f"sequential, min {low}, max {high} (trains {low} seeds, up to {high} while the verdict is undecided)"


def machine_line(experiment) -> str | None:
    """What training needs beyond a CPU and whether this machine has it (None: a CPU will do), e.g.
    ``needs: a CUDA GPU (train.accelerator: cuda), flash-attn (model.attention: flash); not on this
    machine: a CUDA GPU, flash-attn (`run` refuses it here)``."""
    needs = machine_needs(experiment)
    problems = machine_problems(experiment)
    if not needs and not problems:
        return None
    line = "needs: " + (", ".join(f"{n.what} ({n.why})" for n in needs) or "nothing beyond a CPU")
    missing = [n.what for n in needs if not n.present]
    if missing or problems:
        what = ", ".join(missing) if missing else problems[0].problem
        return line + f"; not on this machine: {what} (`run` refuses it here)"
    return line + "; this machine has them"


def _grid_text(values: list[float]) -> str:
    return " ".join(f"{v:.4g}" for v in values)


def tune_lines(experiment) -> list[str]:
    """The ``tune:`` line: the key, how the grid is made, tuning seeds and extension limit; then each
    cell's configured grid (cells with the same grid share a line)."""
    tune = experiment.tune
    how = (f"values {_grid_text(list(tune.values))}" if tune.values is not None
           else "x" + " x".join(f"{m:g}" for m in tune.multipliers) + " of each variant's own value")
    seeds = experiment.tuning_seeds()
    extend = (f"up to {tune.extend} point{'s' * (tune.extend != 1)} per side beyond the grid, trained only while "
              f"an optimum sits on that edge" if tune.extend else "none")
    where = "; the grid at each variant's smallest size only (tune.at: smallest)" if tune.at == "smallest" else ""
    lines = [f"tune: {tune.key} over {how}; tuning seed{'s' * (len(seeds) != 1)} {seeds}{where}"]
    grids: dict[str, list[float]] = {}
    transfers: dict[str, list[str]] = {}
    for variant in experiment.variants.values():
        if not variant.point.tuning:
            transfers.setdefault(variant.point.source, [])
            if variant.cell not in transfers[variant.point.source]:
                transfers[variant.point.source].append(variant.cell)
        elif variant.point.step == 0:
            grids.setdefault(variant.cell, []).append(variant.point.value)
    by_grid: dict[str, list[str]] = {}
    for cell, values in grids.items():
        by_grid.setdefault(_grid_text(sorted(values)), []).append(cell)
    for grid, cells in by_grid.items():
        lines += _wrapped(f"  grid {grid}: ", cells)
    for source, cells in transfers.items():
        lines += _wrapped(f"  no grid, verdict seeds at {source}'s optimum: ", cells)
    return lines + [f"  extension: {extend}"]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def runs_line(experiment, estimate: est.Estimate) -> str:
    """``runs: 10 tuning + 2 verdict (up to 20 with edge extensions)``, or for an untuned experiment
    ``runs: 4 (2 run groups x 2 seeds; up to 12 with sequential seeds)``."""
    extras = [what for what, present in (("edge extensions", experiment.tune is not None and experiment.tune.extend),
                                         ("sequential seeds", experiment.sequential)) if present]
    more = f"up to {estimate.most} with {' and '.join(extras)}" if estimate.most > estimate.runs else ""
    if experiment.tune is not None:
        return f"runs: {estimate.tuning} tuning + {estimate.verdict} verdict" + (f" ({more})" if more else "")
    groups, seeds = len(experiment.variants), experiment.seed_policy["min"]
    return (f"runs: {estimate.runs} ({groups} run group{'s' * (groups != 1)} x {seeds} seed{'s' * (seeds != 1)}"
            + (f"; {more})" if more else ")"))


def horizons_line(experiment) -> str | None:
    """``steps trained: 460 per variant and seed (700 as separate runs, 66%): ...`` for a WSD steps sweep,
    whose shorter horizons branch their cool-downs off the longest (``horizon_sweep``); None without one."""
    shown = [v for v in experiment.variants.values() if v.point is None or v.point.step == 0]
    costs = family_costs(shown)
    if not costs:
        return None
    trained, separate = sum(c[1] for c in costs), sum(c[2] for c in costs)
    if len(set((tuple(h), t, s) for h, t, s in costs)) == 1:
        horizons, trained, separate = costs[0]
        unit = "grid point" if experiment.tune is not None else "variant"
        return (f"steps trained: {trained} per {unit} and seed ({separate} as separate runs, {trained / separate:.0%}): "
                f"wsd horizons {sorted(horizons)} branch their cool-downs off the longest")
    return (f"steps trained: {trained} per seed in {len(costs)} horizon sweeps ({separate} as separate runs, "
            f"{trained / separate:.0%}): shorter wsd horizons branch their cool-downs off the longest")


def estimate_line(experiment, estimate: est.Estimate) -> str:
    """The estimated CPU time, labelled as one, with a caveat where the runs are not fp32 on a CPU."""
    most = f" (up to {_duration(estimate.most_seconds)})" if estimate.most_seconds > estimate.seconds else ""
    line = (f"estimated CPU time: {_duration(estimate.seconds)}{most} on {est.MEASURED_ON} "
            f"(an estimate; scale by your machine's speed)")
    trains = [v.train for v in experiment.variants.values()]
    devices = sorted({t.accelerator for t in trains if t.accelerator != "cpu"})
    precisions = sorted({t.precision for t in trains if t.precision not in ("32", "auto")})
    if devices:
        line += f"; train.accelerator {', '.join(devices)}: only CPU time is estimated, a GPU's differs"
    elif precisions:
        line += f"; measured in fp32, precision {', '.join(precisions)} may run much faster or slower"
    return line


def show_lines(experiment, full: bool = False) -> list[str]:
    head = [f"experiment: {experiment.name}  ({experiment.description})",
            f"seeds: {seeds_text(experiment)}  baseline: {experiment.baseline}  budget: {experiment.budget or 'train.steps'}"]
    machine = machine_line(experiment)
    estimate = est.estimate(experiment)
    head += ([machine] if machine else []) + (tune_lines(experiment) if experiment.tune else [])
    horizons = horizons_line(experiment)
    head += [runs_line(experiment, estimate)] + ([horizons] if horizons else []) + [estimate_line(experiment, estimate)]
    shown = experiment
    if experiment.tune is not None:  # each variant once, at its own value: the grid is on the tune: line
        cells = {v.cell: v.untuned() for v in experiment.variants.values()}
        shown = dataclasses.replace(experiment, variants=cells, tune=None)
    return head + (full_lines(shown) if full else diff_lines(shown))
