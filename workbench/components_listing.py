"""``workbench components``: every registered component by kind, its description in full and its options.

The options are what a spec may set (``model.norm: {name: layernorm, eps: 1.0e-6}``): the registry's
``options`` (the factory's signature less the sizes the model passes, as the config checker validates
them), each with its type and default. A kind's settings (``bias``, RoPE's ``theta``, ``init_std``) are
options whose default is a model key, so they show that key; the norm's ``eps`` is also written
``model.norm_eps``.
"""

from __future__ import annotations

import inspect
import textwrap

from components import registry as default_registry
from components.config import COMPONENT_FIELDS
from components.contract import KINDS

WIDTH = 100
NAME_WIDTH = 12
SETTING_KEYS = {"bias": "model.bias", "theta": "model.rope_theta", "init_std": "model.init_std"}  # BuildContext.from_config
ALIASES = {("norm", "eps"): "model.norm_eps"}  # another spelling of the option (workbench.config.specs)
INTRO = ("Choose one per axis by name (model.norm: rmsnorm) or with options (model.norm: {name: rmsnorm, eps: 1.0e-5}). "
         "An option shown as = model.KEY follows that key of the model config unless the spec sets it.")


def description(entry) -> str:
    """The registered description; where it is the docstring's first line, the docstring's whole first
    paragraph (a first line may stop mid-sentence)."""
    doc = inspect.getdoc(entry.factory) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    if entry.description != first:
        return entry.description
    return " ".join(doc.strip().split("\n\n")[0].split())


def option_texts(registry, kind: str, name: str) -> list[str]:
    """``["eps: float = 1e-05 (or model.norm_eps)", "bias: bool = model.bias"]`` for one entry."""
    parameters = inspect.signature(registry.get(kind, name).factory).parameters
    texts = []
    for option, type_name in registry.options(kind, name, KINDS[kind].sizes).items():
        if option in KINDS[kind].settings:
            default = f" = {SETTING_KEYS[option]}"
        elif option in parameters and parameters[option].default is not inspect.Parameter.empty:
            default = f" = {parameters[option].default!r}"
        else:
            default = " (required)"
        alias = f" (or {ALIASES[kind, option]})" if (kind, option) in ALIASES else ""
        texts.append(f"{option}: {type_name}{default}{alias}")
    return texts


def listing_lines(registry=default_registry) -> list[str]:
    """The listing: per kind (and the model key that picks it), each entry's name, its description
    wrapped, then its options."""
    indent = " " * (2 + NAME_WIDTH + 1)
    fields = {kind: field for field, kind in COMPONENT_FIELDS.items()}
    lines = textwrap.wrap(INTRO, WIDTH)
    for kind in registry.kinds():
        lines.append(f"{kind} (model.{fields[kind]}):" if kind in fields else f"{kind}:")
        for entry in registry.entries(kind):
            lines += textwrap.wrap(description(entry), WIDTH, initial_indent=f"  {entry.name:<{NAME_WIDTH}} ",
                                   subsequent_indent=indent, break_on_hyphens=False) or [f"  {entry.name}"]
            options = option_texts(registry, kind, entry.name)
            lines += textwrap.wrap("options: " + ("; ".join(options) if options else "none"), WIDTH,
                                   initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False)
    return lines
