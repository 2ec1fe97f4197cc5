"""sizes: train every variant at every model size, the axis of a scaling sweep.

    sizes:
      - ../configs/size/tiny.yaml                     # a preset file, named by its stem: 'tiny'
      - {name: s64, dim: 64, n_layers: 2, n_heads: 2}  # inline model keys; name optional

Each (variant, size) becomes one run group named ``<variant>@<size>``. A size sets the model's
shape, a variant its architecture: a key set by a size may not also be set by a variant or by a
key=value override, since one of the two would silently lose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import COMMAND_LINE, ConfigError, did_you_mean
from ..presets import is_name
from .files import PRESET_KEYS, expand_defaults, preset_file, read_yaml
from .schema import VariantSchema, keys_at
from .specs import flatten

from ..run_groups import SEP
_SAFE = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}"
SAFE_NAME = re.compile(rf"^{_SAFE}$")  # becomes a folder name
SAFE_NAME_RULE = "letters, digits, '-', '_', '.', not starting with '.', at most 100 characters"
GROUP_NAME = re.compile(rf"^({_SAFE}){SEP}({_SAFE})$")


@dataclass
class Size:
    """One entry of ``sizes:``: its name and the preset layers it merges, lowest priority first."""

    name: str
    index: int
    source: str  # the file (or "command line") that lists it
    layers: list[tuple[str, dict]]  # (file, {section: mapping}) in merge order
    inline: bool  # written as a mapping of model keys under sizes[index]
    axis: str = "sizes"  # the key that lists it: sizes, or sweep.SECTION.KEY

    @property
    def where(self) -> str:
        return f"{self.axis}[{self.index}]"


def split_group_name(name: str) -> tuple[str, str] | None:
    """``'llama@s64'`` -> ``('llama', 's64')``; None for a plain variant name."""
    match = GROUP_NAME.match(name)
    return (match.group(1), match.group(2)) if match else None


def _default_name(model: Mapping, index: int) -> str:
    parts = [f"{tag}{model[key]}" for key, tag in (("dim", "d"), ("n_layers", "l"), ("n_heads", "h")) if key in model]
    return "-".join(parts) if parts else f"size{index}"


def parse_sizes(spec: Any, source: str) -> list[Size]:
    """The ``sizes:`` list as Sizes; files are relative to ``source``'s folder (the working directory
    for a key=value override). Any problem is a one-line ConfigError naming ``sizes[i]``."""
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise ConfigError(source, "sizes", f"expected a list of size presets or mappings, got {spec!r}",
                          "[../configs/size/tiny.yaml, {name: s, dim: 64, n_layers: 2, n_heads: 2}]")
    base = Path.cwd() if source == COMMAND_LINE else Path(source).parent
    model_keys = keys_at(VariantSchema, "model") or []
    sizes: list[Size] = []
    for i, item in enumerate(spec):
        where = f"sizes[{i}]"
        if isinstance(item, str) and item:
            if is_name(item):  # a shipped preset by name: size/small
                file = preset_file(Path(source), where, item)
            else:
                file = Path(item).expanduser()
                file = (file if file.is_absolute() else base / file).resolve()
                if not file.is_file():
                    raise ConfigError(source, where, f"file not found: {file}")
            preset = read_yaml(file)
            for key in preset:
                if key not in PRESET_KEYS:
                    raise ConfigError(file, key, "not allowed in a size preset", ", ".join(PRESET_KEYS))
            layers = expand_defaults(file, preset) + [(str(file), {k: v for k, v in preset.items() if k != "defaults"})]
            sizes.append(Size(file.stem, i, source, [(str(f), m) for f, m in layers], inline=False))
        elif isinstance(item, Mapping):
            body = dict(item)
            name = body.pop("name", None)
            for key in body:
                if key not in model_keys:
                    raise ConfigError(source, f"{where}.{key}", f"unknown model key '{key}'{did_you_mean(key, model_keys)}; "
                                      "an inline size holds model keys (put other sections in a size preset file)",
                                      ", ".join(["name"] + model_keys))
            name = _default_name(body, i) if name is None else name
            sizes.append(Size(str(name), i, source, [(source, {"model": body})], inline=True))
        else:
            raise ConfigError(source, where, f"expected a preset file path or a mapping of model keys, got {item!r}")
        if not isinstance(name := sizes[-1].name, str) or not SAFE_NAME.match(name):
            raise ConfigError(source, f"{where}.name", f"invalid size name {name!r}: it names run folders", SAFE_NAME_RULE)
    for s in sizes:
        first = next(t for t in sizes if t.name == s.name)
        if first is not s:
            raise ConfigError(source, s.where, f"two sizes are named '{s.name}' ({first.where} and {s.where})",
                              "distinct names (give inline sizes a name:)")
    return sizes


SWEEP_SECTIONS = ("model", "train")


def parse_sweep(spec: Any, source: str) -> list[Size]:
    """``sweep: {SECTION.KEY: [v1, v2, ...]}``: one axis as easy as ``sizes:``, e.g. depth
    (``model.n_layers``) or horizon (``train.steps``); each value is a size named ``KEYvalue``."""
    allowed = "one SECTION.KEY: [values], e.g. {model.n_layers: [2, 4, 8]} or {train.steps: [100, 200, 400]}"
    if not spec:
        return []
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(source, "sweep", f"expected one key with a list of values, got {spec!r}", allowed)
    key, values = next(iter(spec.items()))
    section, _, leaf = str(key).partition(".")
    keys = keys_at(VariantSchema, section) if section in SWEEP_SECTIONS else None
    if not keys or leaf not in keys:
        options = [f"{s}.{k}" for s in SWEEP_SECTIONS for k in keys_at(VariantSchema, s) or []]
        raise ConfigError(source, f"sweep.{key}", f"unknown key{did_you_mean(str(key), options)}", "model.KEY or train.KEY")
    if not isinstance(values, list) or len(values) < 2 or len(set(map(repr, values))) != len(values):
        raise ConfigError(source, f"sweep.{key}", f"expected a list of at least two distinct values, got {values!r}")
    sizes = [Size(f"{leaf}{value}", i, source, [(source, {section: {leaf: value}})], inline=False, axis=f"sweep.{key}")
             for i, value in enumerate(values)]
    for size in sizes:
        if not SAFE_NAME.match(size.name):
            raise ConfigError(source, size.where, f"the value makes an invalid run folder name {size.name!r}", SAFE_NAME_RULE)
    return sizes


def size_keys(size: Size) -> list[str]:
    """Dotted keys (``model.dim``) the size sets."""
    return [key for _, layer in size.layers for key in flatten(layer)]


def check_overlap(size: Size, variant: str, variant_keys: dict[str, str]) -> None:
    """Refuse a key both ``size`` and the variant (or an override) set; ``variant_keys`` maps each
    dotted key the variant sets to where it is written."""
    for key in size_keys(size):
        if key in variant_keys:
            written = f"{size.where}.{key.partition('.')[2]}" if size.inline else size.where
            raise ConfigError(size.source, written,
                              f"sets {key}, which {variant_keys[key]} also sets: a size sets the model's shape, "
                              f"a variant its architecture; set {key} in one place")
