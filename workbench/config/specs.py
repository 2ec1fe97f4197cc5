"""Component specs in configs: ``model.norm: rmsnorm`` or ``model.norm: {name: rmsnorm, eps: 1.0e-5}``.

Every component axis (``model.norm``, ``model.norm_placement``, ``model.ffn``, ``model.positions``,
``model.attention``) takes a name or a mapping of ``name`` plus the component's options; a
``ComponentSpec`` is one, parsed. How a layer (a preset, the experiment, a variant, a ``key=value``
override, a size) combines with the spec below it (``ComponentSpec.merged``):

  - a name, or a mapping that has ``name``, **replaces** the spec: a new component starts from its
    own defaults, so options meant for the old one never leak onto it
    (``{name: layernorm}`` over ``{name: rmsnorm, eps: 1.0e-5}`` is plain LayerNorm);
  - a mapping without ``name`` **merges** its options into the spec below, keeping its component
    (``{eps: 1.0e-5}`` over ``rmsnorm`` is ``{name: rmsnorm, eps: 1.0e-5}``; so is the override
    ``model.norm.eps=1e-5``).

The ``key=value`` overrides are one layer, so ``model.ffn.name=moe model.ffn.n_experts=4`` is one spec.

``model.norm_eps`` is another spelling of ``model.norm.eps``: ``alias_norm_eps`` rewrites it into the
norm spec as each layer is read, so there is one eps, merged by the one rule above, and a later layer
wins whichever spelling either used. What the spelling still decides: an eps written as ``norm_eps``
outlives a change of norm (``norm: layernorm`` over a preset's ``norm_eps: 1.0e-6`` is LayerNorm with
eps 1e-6), as a model key always has; and the resolved config stores it under ``norm_eps`` again
(``spell_norm_eps``), so the run folder identity of every config written before reads the same.

Resolved specs are canonical: a mapping with no options collapses to its name, so ``{name: rmsnorm}``
and ``rmsnorm`` are the same run (same identity, same results.json config). Parsing needs no
registry: a stored config parses without its plugins imported; names and options are checked
against the registry only when the model is built (``checks.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SPEC_FORM = "a component name, or {name: NAME, OPTION: VALUE, ...}"


@dataclass(frozen=True)
class ComponentSpec:
    """One component axis's value: ``name`` (as written: a string unless the config is wrong) and options."""

    name: Any
    options: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((repr(self.name), repr(sorted(self.options.items(), key=repr))))

    @classmethod
    def parse(cls, value: Any) -> ComponentSpec:
        """``"rmsnorm"`` or ``{name: rmsnorm, eps: 1e-5}``; anything else is kept as the name, for the
        checks to reject with its key (``norm: null``, ``ffn: [swiglu]``)."""
        if isinstance(value, ComponentSpec):
            return value
        if isinstance(value, Mapping):
            return cls(value.get("name"), {str(k): v for k, v in value.items() if k != "name"})
        return cls(value)

    @staticmethod
    def replaces(value: Any) -> bool:
        """Whether ``value`` written for a component key replaces the spec below it (see the module doc)."""
        return not isinstance(value, Mapping) or "name" in value

    def merged(self, value: Any) -> ComponentSpec:
        """This spec with a layer's ``value`` for its key applied (the rule in the module doc)."""
        if self.replaces(value):
            return ComponentSpec.parse(value)
        return ComponentSpec(self.name, {**self.options, **{str(k): v for k, v in value.items()}})

    def without(self, option: str) -> ComponentSpec:
        """This spec with ``option`` back at the component's default."""
        return ComponentSpec(self.name, {k: v for k, v in self.options.items() if k != option})

    def canonical(self) -> Any:
        """As stored: the name alone without options, else ``{name: ..., OPTION: VALUE}``, name first."""
        return {"name": self.name, **self.options} if self.options else self.name

    def format(self) -> str:
        """As written in YAML flow style: ``rmsnorm``, ``{name: rmsnorm, eps: 1e-05}``."""
        return format_value(self.canonical())


def format_value(value: Any) -> str:
    """A config value as YAML flow style writes it: ``{name: rmsnorm, eps: 1e-05}``, ``[a, b]``, ``null``, ``true``."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def is_spec(key: str, value: Any) -> bool:
    """Whether ``value`` at dotted ``key`` of a config is a component spec written as a mapping
    (``model.norm: {name: ...}``); model keys hold nothing else with a name."""
    return key.startswith("model.") and key.count(".") == 1 and isinstance(value, Mapping) and "name" in value


def flatten(data: Any, prefix: str = "", specs: bool = False) -> dict[str, Any]:
    """Nested mappings as ``{dotted key: leaf}``, in order; lists and empty mappings are leaves, and
    with ``specs`` so is a component spec (``model.norm``)."""
    if not isinstance(data, Mapping) or (prefix and not data) or (specs and is_spec(prefix, data)):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key), specs))
    return out


def flat_config(config: Mapping) -> dict[str, Any]:
    """A stored config (``{"model": ..., "data": ..., "train": ...}``) as ``{dotted key: value}``, a
    component spec one value in YAML flow style (``model.norm: "{name: rmsnorm, eps: 1e-05}"``)."""
    return {k: format_value(v) if is_spec(k, v) else v for k, v in flatten(config, specs=True).items()}


def alias_norm_eps(model: Mapping, spelled: bool) -> tuple[dict, bool]:
    """A layer's ``model`` section with ``norm_eps`` read as the norm spec's ``eps`` option, and whether the
    norm's eps is then one written as ``norm_eps`` (``spelled``: it was before this layer). ``norm_eps:
    null`` (the norm's own default) is left to ``clears_norm_eps``. ValueError when the layer sets both
    (one setting written twice)."""
    out = {k: v for k, v in model.items() if k != "norm_eps"}
    norm, has_norm = model.get("norm"), "norm" in model
    in_spec = isinstance(norm, Mapping) and "eps" in norm
    if model.get("norm_eps") is not None:
        eps = _as_float(model["norm_eps"])
        if in_spec and norm["eps"] is not None:
            raise ValueError(f"invalid value {eps!r}: the norm spec sets eps={norm['eps']!r} too; set it in one place")
        out["norm"] = _with_eps(norm, has_norm, eps)
        return out, True
    return out, False if in_spec or "norm_eps" in model else spelled


def clears_norm_eps(model: Any) -> bool:
    """Whether a layer's ``model`` section sets ``norm_eps: null`` without a spec eps beside it: the norm's
    own default, in place of an eps written as ``norm_eps`` (a spec's own eps it leaves alone)."""
    if not isinstance(model, Mapping) or "norm_eps" not in model or model["norm_eps"] is not None:
        return False
    return not (isinstance(model.get("norm"), Mapping) and "eps" in model["norm"])


def _with_eps(norm: Any, has_norm: bool, eps: Any) -> dict:
    """A layer's norm value with the ``eps`` option added (a bare name becomes ``{name: ..., eps: ...}``)."""
    if not has_norm:
        return {"eps": eps}
    return {**norm, "eps": eps} if isinstance(norm, Mapping) else {"name": norm, "eps": eps}


def _as_float(value: Any) -> Any:
    """What OmegaConf made of a value for a float key: ``1`` and ``"1e-5"`` as floats; else unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return value
    try:
        return float(value)
    except ValueError:
        return value


def spell_norm_eps(model: dict, spelled: bool) -> dict:
    """The resolved ``model`` with the norm's eps back under ``norm_eps`` where it was written so
    (``spelled``), as configs have always stored it; ``norm_eps`` None otherwise."""
    spec = ComponentSpec.parse(model["norm"])
    if spelled and "eps" in spec.options:
        options = {k: v for k, v in spec.options.items() if k != "eps"}
        return {**model, "norm": ComponentSpec(spec.name, options).canonical(), "norm_eps": spec.options["eps"]}
    return {**model, "norm_eps": None}
