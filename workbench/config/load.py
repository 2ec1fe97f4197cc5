"""load_experiment: compose an experiment file with its presets, variants and CLI overrides, then check,
resolve and (for ``run``) check it against this machine.

Merge order, lowest priority first, for every variant:
  schema defaults < defaults files (in order) < the experiment's model/data/train
  < the variant's overrides < key=value overrides < variants.NAME.key=value overrides [< the size]
Every step is one ``Composition.apply``: a typed OmegaConf merge, so a wrong type or unknown key fails
at the step that introduced it, naming that file. A component key (``model.norm``, ...) written as a
name or as ``{name: ...}`` replaces the spec below it; ``{option: value}`` without a name adds options
to it (``specs.py``). With ``sizes:`` each variant is merged once per size (a size may not set a key
the variant or an override sets). Then three steps: ``check_experiment`` (pure: values, names, specs),
``resolve_experiment`` (data files, tokenizer vocabulary, model build, ``budget:`` into train.steps,
eval lengths) and ``check_machine`` (CUDA, flash-attn, precision support: ``run`` only). Between the first
two, ``controls:`` adds its run groups (``controls.py``), copies of checked ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from .checks import check_experiment, outside_range
from .compose import Composition
from .controls import add_controls, parse_controls
from .errors import COMMAND_LINE, ConfigError, did_you_mean
from .experiment import Experiment, Origins, Variant
from .files import expand_defaults, read_yaml
from .machine import check_machine
from .overrides import Overrides, dotlist, parse_overrides, split_variant_key
from .resolve import resolve_experiment
from .schema import SECTIONS, TOP_LEVEL, ExperimentSchema
from ..run_groups import cell_name
from .sizes import Size, check_overlap, parse_sizes, parse_sweep, split_group_name
from .specs import flatten
from .tune import Tune, parse_tune

DEFAULT_VARIANT = "base"  # the one variant of an experiment without variants


def load_experiment(path: str | Path, overrides: Sequence[str] = (), machine: bool = True) -> Experiment:
    """Load, compose, check and resolve an experiment; with ``machine``, also refuse what this machine
    cannot train (``show`` and ``data`` pass False: they describe, they train nothing). Any problem is
    a one-line ConfigError."""
    experiment = compose_experiment(path, overrides)
    beyond = outside_range(experiment)
    if beyond:
        experiment = dataclasses.replace(experiment, variants={n: v for n, v in experiment.variants.items() if n not in beyond})
    check_experiment(experiment)
    experiment = resolve_experiment(add_controls(experiment))
    if machine:
        check_machine(experiment)
    return experiment


def compose_experiment(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """The experiment with every variant merged, before value checks (see ``load_experiment``)."""
    path = Path(path).expanduser()
    cli = parse_overrides(overrides)
    raw = read_yaml(path)
    path = path.resolve()
    root = _compose_root(path, raw, cli)
    resolved = root.resolve(str(path))
    sizes = _axis(resolved, root.origins, str(path))
    variants = _compose_variants(raw, cli, root, sizes, str(path))
    tune_source = _last_origin(root.origins, "tune", str(path))
    tune = parse_tune(resolved["tune"], tune_source)
    if tune is not None:
        variants = _expand_grids(variants, tune, tune_source)
    return _experiment(path, resolved, root.origins, variants, sizes, tune)


def _last_origin(origins: Origins, key: str, default: str) -> str:
    """The file (or command line) that set ``key`` or one of its own keys last."""
    found = [o[0] for k, o in origins.items() if k == key or k.startswith(key + ".")]
    return found[-1] if found else default


def _expand_grids(variants: dict[str, Variant], tune: Tune, source: str) -> dict[str, Variant]:
    """Every variant (at every size) as one run group per point of its grid (``tune.py``). A grid of
    ``values`` replaces the key, so an override, or a variant or size that sets it apart, may not also set it."""
    out = {}
    section, _, leaf = tune.key.partition(".")
    own = {n: getattr(v.train, leaf) if section == "train" else v.model.get(leaf) for n, v in variants.items()}
    differ = len(set(map(repr, own.values()))) > 1
    for name, variant in variants.items():
        origin = variant.origins.get(tune.key) or ("", tune.key)
        # a grid of values erases what an override, or a variant or size unlike the others, set
        if tune.values is not None and (origin[0] == COMMAND_LINE or (origin[1] != tune.key and differ)):
            raise ConfigError(source, "tune.values", f"replaces {tune.key}, which {origin[1]} ({origin[0]}) also sets "
                              f"for variant '{variant.arch}': one of the two would silently lose",
                              f"drop one, or tune multipliers of each variant's own {tune.key}")
        base = own[name]
        valid = isinstance(base, (int, float)) and not isinstance(base, bool) and base > 0
        if tune.values is None and not valid:
            raise ConfigError(source, "tune.key", f"{tune.key} is {base!r} for variant '{variant.cell}': "
                              f"a grid of multipliers needs a positive value", "a positive value of the tuned key")
        for point in tune.points(float(base) if valid else 0.0):
            tuned = variant.at(point, tune.point_name(variant.cell, point.value))
            grid = "tune.values" if tune.values is not None else "tune.multipliers"
            tuned.origins = {**variant.origins, tune.key: (source, f"{grid} ({tune.key})")}
            out[tuned.name] = tuned
    return out


def _compose_root(path: Path, raw: dict, cli: Overrides) -> Composition:
    """The experiment's own keys: its presets, the file, then the top-level key=value overrides."""
    root = Composition(ExperimentSchema)
    for file, preset in expand_defaults(path, raw):
        _replace_seeds(root.conf, preset)
        root.apply(preset, str(file))
    own = {k: v for k, v in raw.items() if k not in ("defaults", "variants")}
    _replace_seeds(root.conf, own)
    root.apply(own, str(path))
    top = dotlist(cli.top)
    for key in ("budget", "sweep"):  # one budget kind, one sweep axis at a time: an override replaces the file's
        if key in top:
            setattr(root.conf, key, None if key == "budget" else {})
            root.origins = {k: o for k, o in root.origins.items() if k.partition(".")[0] != key}
    grid = top.get("tune")
    if isinstance(grid, Mapping) and {"values", "multipliers"} & set(grid) and root.conf.get("tune") is not None:
        root.conf.tune.values = root.conf.tune.multipliers = None  # a grid given here replaces the file's
    _replace_seeds(root.conf, top)
    root.apply(top, COMMAND_LINE)
    if OmegaConf.is_missing(root.conf, "name"):
        raise ConfigError(path, "name", "missing: every experiment needs a name (it names the run folder runs/<name>/)")
    return root


def _axis(resolved: dict, origins: Origins, source: str) -> list[Size]:
    """The sizes a variant is trained at: ``sizes:``, or the values of ``sweep:``'s one key."""
    sizes = parse_sizes(resolved["sizes"], origins.get("sizes", (source, "sizes"))[0])
    if not resolved["sweep"]:
        return sizes
    sweep_from = [o[0] for k, o in origins.items() if k.startswith("sweep.")]
    sweep_source = sweep_from[-1] if sweep_from else source
    if sizes:
        raise ConfigError(sweep_source, "sweep", "sizes: and sweep: both given: an experiment sweeps one axis",
                          "sizes: [...] or sweep: {SECTION.KEY: [...]}")
    sizes = parse_sweep(resolved["sweep"], sweep_source)
    if "train.steps" in resolved["sweep"] and resolved["budget"] is not None:
        raise ConfigError(sweep_source, "sweep.train.steps", "a budget: sets train.steps too: drop one of them")
    return sizes


def _compose_variants(raw: dict, cli: Overrides, root: Composition, sizes: list[Size], source: str) -> dict[str, Variant]:
    """Every variant (every variant@size with sizes), in file order."""
    variant_specs = _variant_specs(raw.get("variants"), source)
    per_variant = _variant_overrides(cli.variants, list(variant_specs))
    shared = dotlist(cli.sections)
    base = root.variant_base()
    variants = {}
    for name, spec in variant_specs.items():
        prefix = f"variants.{name}."
        comp = base.copy()
        comp.apply(spec, source, prefix)
        comp.apply(shared, COMMAND_LINE)
        comp.apply(per_variant[name], COMMAND_LINE, prefix)
        plain = comp.resolve(source, prefix)
        if not sizes:
            arch, size = split_group_name(name) or (name, None)  # a resolved experiment.yaml lists a@s
            variants[name] = Variant(name, plain["model"], plain["data"], plain["train"], comp.origins, arch=arch, size=size)
            continue
        set_by = {**{k: f"variants.{name}" for k in flatten(spec)},
                  **{k: f"the override {k}=..." for k in flatten(shared)},
                  **{k: f"the override variants.{name}.{k}=..." for k in flatten(per_variant[name])}}
        for size in sizes:
            check_overlap(size, name, set_by)
            full = cell_name(name, size.name)
            plain, origins = _sized(comp.copy(), size)
            variants[full] = Variant(full, plain["model"], plain["data"], plain["train"], origins, arch=name, size=size.name)
    return variants


def _sized(comp: Composition, size: Size) -> tuple[dict, Origins]:
    """A variant's composition with ``size``'s layers on top: (the resolved config, its origins)."""
    for file, layer in size.layers:
        if size.inline:  # written as sizes[i].KEY: model keys without the section
            comp.apply(layer, file, f"{size.where}.", written=lambda key: f"{size.where}.{key.partition('.')[2]}")
        else:
            comp.apply(layer, file)
    return comp.resolve(size.source, f"{size.where}."), comp.origins


def _experiment(path: Path, resolved: dict, origins: Origins, variants: dict[str, Variant], sizes: list[Size],
                tune: Tune | None) -> Experiment:
    seeds_from = [o[0] for k, o in origins.items() if k == "seeds" or k.startswith("seeds.")]
    seeds, policy = parse_seeds(resolved["seeds"], seeds_from[-1] if seeds_from else str(path))
    return Experiment(
        name=resolved["name"],
        description=resolved["description"],
        path=path,
        seeds=seeds,
        seed_policy=policy,
        equivalence_margin=resolved["equivalence_margin"],
        reference=resolved["reference"],
        ladder=bool(resolved["ladder"]),
        baseline=resolved["baseline"] if resolved["baseline"] is not None else next(iter(variants.values())).arch,
        imports=list(resolved["imports"]),
        variants=variants,
        origins={k: o for k, o in origins.items() if k.partition(".")[0] in TOP_LEVEL},
        budget=None if resolved["budget"] is None else {k: _whole(v) for k, v in resolved["budget"].items() if v is not None},
        eval={**resolved["eval"], "lengths": [_whole(x) for x in resolved["eval"]["lengths"]]},
        sizes=[s.name for s in sizes] or list(dict.fromkeys(v.size for v in variants.values() if v.size)),
        tune=tune,
        controls=parse_controls(resolved["controls"], _last_origin(origins, "controls", str(path))),
    )


def _replace_seeds(root, layer: Mapping) -> None:
    """A seed list, or a policy where a list stood, replaces ``seeds`` (OmegaConf cannot merge a list
    and a mapping); ``seeds.max=8`` over a policy updates it."""
    new, old = layer.get("seeds"), root.get("seeds")
    if "seeds" in layer and not (isinstance(new, Mapping) and OmegaConf.is_dict(old)):
        root.seeds = None


def parse_seeds(spec: Any, source: str) -> tuple[list, dict]:
    """``[0, 1]`` -> (the list, one look); ``{min: 2, max: 8}`` -> (seeds 0..max-1, the policy).
    Values are checked in validate.py; only the form is checked here."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"min", "max"})
        if unknown or "max" not in spec:
            raise ConfigError(source, "seeds", f"expected a list of seeds or {{min: N, max: M}}, got {dict(spec)!r}",
                              "[0, 1, ...] or {min: 2, max: 8}")
        top = spec["max"]
        low = spec.get("min", 2)
        seeds = list(range(top)) if isinstance(top, int) and not isinstance(top, bool) and 0 < top <= 1000 else [top]
        return seeds, {"min": low, "max": top}
    if not isinstance(spec, list):
        raise ConfigError(source, "seeds", f"expected a list of seeds or {{min: N, max: M}}, got {spec!r}",
                          "[0, 1, ...] or {min: 2, max: 8}")
    return list(spec), {"min": len(spec), "max": len(spec)}


def _whole(value: Any) -> Any:
    """2.0 -> 2 (typed float fields read 2 as 2.0); anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _variant_specs(spec: Any, source: str) -> dict[str, dict]:
    """The ``variants:`` mapping, checked to be NAME -> mapping of sections; empty -> one 'base'."""
    if spec is None or spec == {}:
        return {DEFAULT_VARIANT: {}}
    if not isinstance(spec, Mapping):
        raise ConfigError(source, "variants", f"expected a mapping of variant names to overrides, got {spec!r}")
    out = {}
    for name, body in spec.items():
        if not isinstance(name, str):
            raise ConfigError(source, f"variants.{name}", f"variant name {name!r} is not a string (YAML reads yes/no/on/off as booleans): quote it")
        body = {} if body is None else body
        if not isinstance(body, Mapping):
            raise ConfigError(source, f"variants.{name}", f"expected a mapping such as {{model: {{norm: layernorm}}}}, got {body!r}", ", ".join(SECTIONS))
        for key in body:
            if key not in SECTIONS:
                raise ConfigError(source, f"variants.{name}.{key}", f"unknown key '{key}'{did_you_mean(key, SECTIONS)}; a variant overrides only these sections", ", ".join(SECTIONS))
        out[name] = dict(body)
    return out


def _variant_overrides(items: list[tuple[str, str, str]], names: list[str]) -> dict[str, dict]:
    """``variants.NAME.key=value`` overrides grouped by variant, as nested dicts."""
    grouped: dict[str, list[str]] = {name: [] for name in names}
    for path, value, _ in items:
        name, key = split_variant_key(path, names)
        grouped[name].append(f"{key}={value}")
    return {name: dotlist(entries) for name, entries in grouped.items()}
