"""load_experiment: compose an experiment file with its presets, variants and CLI overrides.

Merge order, lowest priority first, for every variant:
  schema defaults < defaults files (in order) < the experiment's model/data/train
  < the variant's overrides < key=value overrides < variants.NAME.key=value overrides [< the size]
Every step is a typed OmegaConf merge, so a wrong type or unknown key fails at the step that
introduced it, naming that file. A component key (``model.norm``, ...) written as a name or as
``{name: ...}`` replaces the spec below it; ``{option: value}`` without a name adds options to it
(``specs.py``). With ``sizes:`` each variant is merged once per size (a size may
not set a key the variant or an override sets). ``validate_experiment`` then checks values, builds
each model, and resolves ``budget:`` into every variant's train.steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import COMMAND_LINE, ConfigError, did_you_mean, from_omegaconf
from .experiment import Experiment, Origins, Variant
from .files import expand_defaults, read_yaml
from .overrides import dotlist, parse_overrides, split_variant_key
from .schema import SECTIONS, TOP_LEVEL, ExperimentSchema, VariantSchema, keys_at, shape_problem
from .specs import canonical_model, prepare_merge, replaced_keys
from .sizes import check_overlap, group_name, parse_sizes, parse_sweep, split_group_name
from .validate import validate_experiment

DEFAULT_VARIANT = "base"  # the one variant of an experiment without variants


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """Load, compose and validate an experiment; any problem is a one-line ConfigError."""
    experiment = compose_experiment(path, overrides)
    validate_experiment(experiment)
    return experiment


def _flatten(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the leaves of nested mappings (lists are leaves)."""
    if not isinstance(data, Mapping) or (prefix and not data):
        return [prefix] if prefix else []
    return [k for key, value in data.items() for k in _flatten(value, f"{prefix}.{key}" if prefix else str(key))]


def _record(origins: Origins, data: Mapping, source: str, written_prefix: str = "") -> None:
    for spec in replaced_keys(data):  # a replaced component spec takes its options' origins with it
        for key in [k for k in origins if k == spec or k.startswith(spec + ".")]:
            del origins[key]
    for key in _flatten(data):
        origins[key] = (source, written_prefix + key)


def _merge(base, update: Mapping, source, schema: type, prefix: str = ""):
    """OmegaConf.merge(base, update), errors naming ``source`` and ``prefix + full_key``."""
    for section in SECTIONS + ("eval",):  # OmegaConf's message for `model: 3` has no key
        if section in update and not isinstance(update[section], Mapping):
            raise ConfigError(source, prefix + section, f"expected a mapping of {section} keys, got {update[section]!r}")
    if update.get("budget") is not None and not isinstance(update["budget"], Mapping):
        raise ConfigError(source, prefix + "budget", f"expected a mapping with one key, got {update['budget']!r}",
                          "{steps: N}, {tokens: N}, {flops: X}, {tokens_per_param: R}")
    wrong = shape_problem(schema, update)
    if wrong:
        key, shape, value = wrong
        keys = keys_at(schema, key)
        example = f"{{{', '.join(keys)}}}" if keys else "a YAML list such as [a, b]" if shape == "a list" else "{KEY: VALUE, ...}"
        raise ConfigError(source, prefix + key, f"expected {shape}, got {value!r}", example)
    base = prepare_merge(base, update)
    try:
        return OmegaConf.merge(base, update)
    except OmegaConfBaseException as exc:
        raise from_omegaconf(exc, source, prefix, lambda parent: keys_at(schema, parent)) from None


def _resolve(conf, source, prefix: str = "") -> dict:
    try:
        plain = OmegaConf.to_container(conf, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        raise from_omegaconf(exc, source, prefix) from None
    if isinstance(plain.get("model"), dict):
        plain["model"] = canonical_model(plain["model"])
    return plain  # type: ignore[return-value]


def compose_experiment(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """The experiment with every variant merged, before value checks (see ``load_experiment``)."""
    path = Path(path).expanduser()
    cli = parse_overrides(overrides)
    raw = read_yaml(path)
    path = path.resolve()
    source = str(path)
    origins: Origins = {}

    root = OmegaConf.structured(ExperimentSchema)
    for file, preset in expand_defaults(path, raw):
        _replace_seeds(root, preset)
        root = _merge(root, preset, str(file), ExperimentSchema)
        _record(origins, preset, str(file))
    own = {k: v for k, v in raw.items() if k not in ("defaults", "variants")}
    _replace_seeds(root, own)
    root = _merge(root, own, source, ExperimentSchema)
    _record(origins, own, source)
    top = dotlist(cli.top)
    for key in ("budget", "sweep"):  # one budget kind, one sweep axis at a time: an override replaces the file's
        if key in top:
            setattr(root, key, None if key == "budget" else {})
            origins = {k: o for k, o in origins.items() if k.partition(".")[0] != key}
    _replace_seeds(root, top)
    root = _merge(root, top, COMMAND_LINE, ExperimentSchema)
    _record(origins, top, COMMAND_LINE)
    if OmegaConf.is_missing(root, "name"):
        raise ConfigError(source, "name", "missing: every experiment needs a name (it names the run folder runs/<name>/)")
    resolved = _resolve(root, source)
    sizes = parse_sizes(resolved["sizes"], origins.get("sizes", (source, "sizes"))[0])
    sweep_from = [o[0] for k, o in origins.items() if k.startswith("sweep.")]
    if resolved["sweep"]:
        sweep_source = sweep_from[-1] if sweep_from else source
        if sizes:
            raise ConfigError(sweep_source, "sweep", "sizes: and sweep: both given: an experiment sweeps one axis",
                              "sizes: [...] or sweep: {SECTION.KEY: [...]}")
        sizes = parse_sweep(resolved["sweep"], sweep_source)
        if "train.steps" in resolved["sweep"] and resolved["budget"] is not None:
            raise ConfigError(sweep_source, "sweep.train.steps", "a budget: sets train.steps too: drop one of them")

    variant_specs = _variant_specs(raw.get("variants"), source)
    per_variant = _variant_overrides(cli.variants, list(variant_specs))
    shared = dotlist(cli.sections)
    base = {s: OmegaConf.to_container(root[s], resolve=False) for s in SECTIONS}
    variants = {}
    for name, spec in variant_specs.items():
        prefix = f"variants.{name}."
        conf = _merge(OmegaConf.structured(VariantSchema), base, source, VariantSchema)
        conf = _merge(conf, spec, source, VariantSchema, prefix)
        conf = _merge(conf, shared, COMMAND_LINE, VariantSchema)
        conf = _merge(conf, per_variant[name], COMMAND_LINE, VariantSchema, prefix)
        plain = _resolve(conf, source, prefix)
        v_origins = {k: o for k, o in origins.items() if k.partition(".")[0] in SECTIONS}
        _record(v_origins, spec, source, prefix)
        _record(v_origins, shared, COMMAND_LINE)
        _record(v_origins, per_variant[name], COMMAND_LINE, prefix)
        if not sizes:
            arch, size = split_group_name(name) or (name, None)  # a resolved experiment.yaml lists a@s
            variants[name] = Variant(name, plain["model"], plain["data"], plain["train"], v_origins, arch=arch, size=size)
            continue
        set_by = {**{k: f"variants.{name}" for k in _flatten(spec)},
                  **{k: f"the override {k}=..." for k in _flatten(shared)},
                  **{k: f"the override variants.{name}.{k}=..." for k in _flatten(per_variant[name])}}
        for size in sizes:
            check_overlap(size, name, set_by)
            sized, s_origins = conf, dict(v_origins)
            for file, layer in size.layers:
                sized = _merge(sized, layer, file, VariantSchema, f"{size.where}." if size.inline else "")
                if size.inline:
                    s_origins.update({k: (file, f"{size.where}.{k.partition('.')[2]}") for k in _flatten(layer)})
                else:
                    _record(s_origins, layer, file)
            plain = _resolve(sized, size.source, f"{size.where}.")
            full = group_name(name, size.name)
            variants[full] = Variant(full, plain["model"], plain["data"], plain["train"], s_origins, arch=name, size=size.name)

    seeds_from = [o[0] for k, o in origins.items() if k == "seeds" or k.startswith("seeds.")]
    seeds, policy = parse_seeds(resolved["seeds"], seeds_from[-1] if seeds_from else source)
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
