"""Command-line ``key=value`` overrides: parsed, sorted by where they apply, Hydra syntax refused.

Three kinds, applied at different points of the merge:
  ``train.steps=10``, ``model.norm=layernorm``  every variant, after the variants' own overrides
  ``seeds=[0,1]``, ``name=x``, ``baseline=x``   the experiment's top-level keys, also ``seeds.max=8``,
  ``budget.flops=1e13``, ``eval.lengths=[1,2]``  ``sizes=[...]``, ``eval={lengths: [2]}``, ``tune.values=[...]``; a budget.KIND
                                               replaces the file's budget
  ``variants.NAME.model.norm=x``               one variant, last of all
Values are parsed as YAML by OmegaConf (``null``, ``[0,1]``, ``3e-4`` work).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import COMMAND_LINE, ConfigError, did_you_mean
from .schema import SECTIONS

TOP_LEVEL_OVERRIDES = ("name", "description", "imports", "seeds", "baseline", "budget", "sizes", "sweep", "ladder",
                       "equivalence_margin", "tune", "controls")
TOP_LEVEL_MAPPINGS = ("budget", "eval", "seeds", "tune")  # top-level keys whose own keys may be set: budget.flops=1e13, seeds.max=8
_KEY = re.compile(r"^[A-Za-z_][\w.\-]*$")


@dataclass
class Overrides:
    """Parsed overrides; each entry keeps the original ``key=value`` text for error messages."""

    top: list[str] = field(default_factory=list)  # top-level key=value
    sections: list[str] = field(default_factory=list)  # model./data./train. key=value
    variants: list[tuple[str, str, str]] = field(default_factory=list)  # (path after "variants.", value, item)


def parse_overrides(items: Sequence[str]) -> Overrides:
    """Sort ``items`` into an ``Overrides``; raise ConfigError on anything it cannot apply."""
    out = Overrides()
    for item in items:
        text = str(item).strip()
        if text.startswith("~"):
            raise ConfigError(COMMAND_LINE, text, "Hydra-style '~key' deletion is not supported: set the key to another value instead (e.g. model.n_kv_heads=null)")
        if text.startswith("+"):
            raise ConfigError(COMMAND_LINE, text, f"Hydra-style '+key' is not supported: every key already exists, write {text.lstrip('+')}")
        if "=" not in text:
            raise ConfigError(COMMAND_LINE, text, "expected key=value (e.g. train.steps=10)")
        key, value = (part.strip() for part in text.split("=", 1))
        if not _KEY.match(key):
            raise ConfigError(COMMAND_LINE, key or text, "not a dotted config key (e.g. train.steps=10)")
        bare = value.strip()
        if "," in bare and bare[:1] not in ("[", "{", "'", '"'):
            raise ConfigError(COMMAND_LINE, key, f"'{text}' looks like a Hydra sweep, which is not supported: make each value a variant in the experiment file (write [a,b] for a list, or quote a string with commas)")
        head, _, rest = key.partition(".")
        if head in SECTIONS:
            out.sections.append(f"{key}={value}")
        elif (head in TOP_LEVEL_OVERRIDES and not rest) or head in TOP_LEVEL_MAPPINGS:  # eval={lengths: [2]} too
            out.top.append(f"{key}={value}")
        elif head == "variants" and rest:
            out.variants.append((rest, value, text))
        elif head == "variants":
            raise ConfigError(COMMAND_LINE, key, "edit one variant at a time: variants.NAME.model.KEY=value")
        elif head == "defaults":
            raise ConfigError(COMMAND_LINE, key, "defaults cannot be changed on the command line; override the keys themselves (e.g. model.norm=layernorm)")
        else:
            known = list(dict.fromkeys(TOP_LEVEL_OVERRIDES + TOP_LEVEL_MAPPINGS)) + [f"{m}.KEY" for m in TOP_LEVEL_MAPPINGS]
            options = known + [f"{s}.KEY" for s in SECTIONS] + ["variants.NAME.SECTION.KEY"]
            names = list(TOP_LEVEL_OVERRIDES) + list(TOP_LEVEL_MAPPINGS) + list(SECTIONS)
            raise ConfigError(COMMAND_LINE, key, f"unknown key{did_you_mean(head, names)}", ", ".join(options))
    return out


def dotlist(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1"]`` -> ``{"a": {"b": 1}}`` with OmegaConf's value parsing."""
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(list(items)), resolve=False)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(COMMAND_LINE, getattr(exc, "full_key", None), str(exc).splitlines()[0]) from None


def split_variant_key(path: str, names: Sequence[str]) -> tuple[str, str]:
    """``"a.b.model.norm"`` -> (``"a.b"``, ``"model.norm"``) for a variant named ``a.b``."""
    for name in sorted(names, key=len, reverse=True):
        rest = path[len(name) + 1:]
        if path.startswith(name + ".") and rest.partition(".")[0] in SECTIONS:
            return name, rest
    parts = path.split(".")
    cut = next((i for i, p in enumerate(parts) if p in SECTIONS and i > 0), None)
    guess = ".".join(parts[:cut]) if cut else parts[0]
    if guess in names:
        raise ConfigError(COMMAND_LINE, f"variants.{path}", "expected variants.NAME.SECTION.KEY", ", ".join(SECTIONS) + " as SECTION")
    raise ConfigError(COMMAND_LINE, f"variants.{path}", f"unknown variant '{guess}'{did_you_mean(guess, names)}", ", ".join(names))
