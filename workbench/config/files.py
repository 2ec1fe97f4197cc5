"""Reading experiment and preset YAML files, and expanding their ``defaults:`` lists.

A file's ``defaults`` are shipped presets by name (``model/llama``, ``workbench.presets``) or paths
relative to that file (absolute ones are kept); a preset may have
its own ``defaults``, expanded depth-first, so the merge order is: a preset's defaults, then the
preset, in list order. A file that (indirectly) lists itself is an error.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

import yaml

from ..presets import is_name, preset_names, preset_path, presets_dir
from .errors import ConfigError, did_you_mean, display_path
from .schema import SECTIONS

PRESET_KEYS = ("defaults",) + SECTIONS
SHIPPED_EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"  # in a checkout; wheels leave it out


def shipped_hint(path: Path) -> str:
    """Where a missing experiment file may be meant: ``; the shipped ablate_norm is experiments/ablate_norm.yaml``
    (or the one its name is closest to) in a checkout; from an install, which has no experiments,
    where they are. ``""`` for a path that names none of them."""
    name = path.name.removesuffix(".yaml")
    if not SHIPPED_EXPERIMENTS.is_dir():
        bare = len(path.parts) == 1
        return ("; the shipped experiments are not installed with the package: they are in the repository's experiments/ "
                "folder (or `python -m workbench init NAME` writes a starter here)") if bare else ""
    shipped = {p.stem: p for p in SHIPPED_EXPERIMENTS.glob("*.yaml")}
    if name in shipped:
        return f"; the shipped {name} is {display_path(shipped[name])}"
    close = difflib.get_close_matches(name, list(shipped), n=1, cutoff=0.75)
    return f"; did you mean the shipped {close[0]}, {display_path(shipped[close[0]])}?" if close else ""


def _yaml_loader():
    """OmegaConf's loader (floats like 3e-4, duplicate keys rejected); its module moved in 2.4."""
    for module in ("omegaconf._yaml", "omegaconf._utils"):
        try:
            return importlib.import_module(module).get_yaml_loader()
        except (ImportError, AttributeError):
            continue
    return yaml.SafeLoader


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in ``path``; an empty file is ``{}``. Every failure is a one-line ConfigError."""
    if not path.exists():
        raise ConfigError(path, None, "file not found" + shipped_hint(path))
    if not path.is_file():
        raise ConfigError(path, None, "not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = " ".join(str(p) for p in (exc.problem, exc.context) if p)
        raise ConfigError(path, None, f"invalid YAML at {where}: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, f"invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"the top level must be a mapping of keys, got a {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(path, str(key), f"key {key!r} is not a string (YAML reads yes/no/on/off as booleans): quote it")
    return data


def defaults_of(path: Path, data: dict[str, Any]) -> list[Path]:
    """The files ``path`` lists under ``defaults:``, resolved against its folder."""
    listed = data.get("defaults") or []
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, list):
        raise ConfigError(path, "defaults", f"expected a list of YAML files, got {listed!r}")
    files = []
    for i, item in enumerate(listed):
        if not isinstance(item, str) or not item:
            raise ConfigError(path, f"defaults[{i}]", f"expected a preset name or a file path, got {item!r}")
        files.append(preset_file(path, f"defaults[{i}]", item) if is_name(item) else _listed_file(path, f"defaults[{i}]", item))
    return files


def _listed_file(path: Path, key: str, item: str) -> Path:
    """A preset given as a path, relative to the file ``path`` that lists it (absolute ones are kept)."""
    file = Path(item).expanduser()
    file = (file if file.is_absolute() else path.parent / file).resolve()
    if not file.is_file():
        names = preset_names()
        hint = f" (or name a shipped preset without .yaml: {', '.join(names)})" if names else ""
        raise ConfigError(path, key, f"file not found: {file}{hint}")
    return file


def preset_file(path: Path, key: str, name: str) -> Path:
    """The shipped preset ``name`` (``model/llama``) that ``path`` lists under ``key``."""
    file = preset_path(name)
    if file is None:
        names = preset_names()
        where = presets_dir()
        raise ConfigError(path, key, f"no preset named '{name}'{did_you_mean(name, names)}"
                          + ("" if where else " (the workbench's configs/ presets are not installed)"),
                          ", ".join(names) + "; or a path to a YAML file, e.g. ./my_model.yaml" if names else None)
    return file.resolve()


def expand_defaults(path: Path, data: dict[str, Any], _stack: tuple[Path, ...] = ()) -> list[tuple[Path, dict]]:
    """Every preset ``path`` builds on, as (file, mapping) in merge order (lowest priority first).

    Presets may hold only ``defaults``, ``model``, ``data`` and ``train``.
    """
    stack = _stack + (path.resolve(),)
    layers: list[tuple[Path, dict]] = []
    for i, file in enumerate(defaults_of(path, data)):
        if file in stack:
            chain = " -> ".join(p.name for p in stack[stack.index(file):] + (file,))
            raise ConfigError(path, f"defaults[{i}]", f"defaults cycle: {chain}")
        preset = read_yaml(file)
        for key in preset:
            if key not in PRESET_KEYS:
                raise ConfigError(file, key, "not allowed in a preset (set it in the experiment file)", ", ".join(PRESET_KEYS))
        layers.extend(expand_defaults(file, preset, stack))
        layers.append((file, {k: v for k, v in preset.items() if k != "defaults"}))
    return layers
