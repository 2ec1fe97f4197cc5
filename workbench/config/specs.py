"""Component specs in configs: ``model.norm: rmsnorm`` or ``model.norm: {name: rmsnorm, eps: 1.0e-5}``.

Every component axis (``model.norm``, ``model.norm_placement``, ``model.ffn``, ``model.positions``,
``model.attention``) takes a name or a mapping of ``name`` plus the component's options. How a
layer (a preset, the experiment, a variant, a ``key=value`` override, a size) combines with the
spec below it:

  - a name, or a mapping that has ``name``, **replaces** the spec: a new component starts from its
    own defaults, so options meant for the old one never leak onto it
    (``{name: layernorm}`` over ``{name: rmsnorm, eps: 1.0e-5}`` is plain LayerNorm);
  - a mapping without ``name`` **merges** its options into the spec below, keeping its component
    (``{eps: 1.0e-5}`` over ``rmsnorm`` is ``{name: rmsnorm, eps: 1.0e-5}``; so is the override
    ``model.norm.eps=1e-5``).

The ``key=value`` overrides are one layer, so ``model.ffn.name=moe model.ffn.n_experts=4`` is one spec.

``model.norm_eps`` is the norm's ``eps`` written as a model key: whichever of the two a later layer
sets wins (``model.norm.eps=1e-5`` over a preset's ``norm_eps: 1.0e-6`` is eps 1e-5), and setting
both in one layer is an error.

Resolved specs are canonical: a mapping with no options collapses to its name, so ``{name: rmsnorm}``
and ``rmsnorm`` are the same run (same identity, same results.json config).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from components.config import COMPONENT_FIELDS

SPEC_FORM = "a component name, or {name: NAME, OPTION: VALUE, ...}"


def replaces(value: Any) -> bool:
    """Whether ``value`` written for a component key replaces the spec below it (see the module doc)."""
    return not isinstance(value, Mapping) or "name" in value


def prepare_merge(base: DictConfig, update: Mapping) -> DictConfig:
    """``base`` ready for ``OmegaConf.merge(base, update)`` to follow the spec rule: a copy with the
    specs ``update`` replaces cleared, and a bare name turned into ``{name: ...}`` where ``update``
    adds options to it (``base`` itself is left as it was)."""
    model = update.get("model")
    if not isinstance(model, Mapping) or "model" not in base:
        return base
    keys = [key for key in COMPONENT_FIELDS if key in model]
    if not keys and "norm_eps" not in model:
        return base
    base = copy.deepcopy(base)
    for key in keys:
        old = base.model[key]
        if replaces(model[key]):
            base.model[key] = None
        elif not OmegaConf.is_dict(old) and old is not None:
            base.model[key] = {"name": old}
    # model.norm_eps and model.norm's eps option are one setting written two ways: the later layer wins.
    spec_eps = isinstance(model.get("norm"), Mapping) and "eps" in model["norm"]
    if spec_eps and "norm_eps" not in model:
        base.model.norm_eps = None
    if model.get("norm_eps") is not None and not spec_eps and OmegaConf.is_dict(base.model.norm):
        base.model.norm.pop("eps", None)
    return base


def replaced_keys(layer: Mapping) -> list[str]:
    """Dotted ``model.KEY`` of the specs ``layer`` replaces, so their old sub-key origins can be dropped."""
    model = layer.get("model")
    if not isinstance(model, Mapping):
        return []
    return [f"model.{key}" for key in COMPONENT_FIELDS if key in model and replaces(model[key])]


def canonical(spec: Any) -> Any:
    """``{name: X}`` -> ``X``; a mapping with options keeps them, ``name`` first; anything else unchanged."""
    if isinstance(spec, Mapping) and "name" in spec:
        options = {k: v for k, v in spec.items() if k != "name"}
        return {"name": spec["name"], **options} if options else spec["name"]
    return spec


def canonical_model(model: dict) -> dict:
    """The ``model`` section with every component spec canonical."""
    return {k: canonical(v) if k in COMPONENT_FIELDS else v for k, v in model.items()}


def spec_name(spec: Any) -> Any:
    """The component name of a spec (the value itself when it is not a mapping)."""
    return spec.get("name") if isinstance(spec, Mapping) else spec


def format_spec(spec: Any) -> str:
    """A spec as it would be written in YAML flow style: ``rmsnorm``, ``{name: rmsnorm, eps: 1e-05}``."""
    if isinstance(spec, Mapping):
        return "{" + ", ".join(f"{k}: {format_spec(v)}" for k, v in spec.items()) + "}"
    if isinstance(spec, (list, tuple)):
        return "[" + ", ".join(format_spec(v) for v in spec) + "]"
    return "null" if spec is None else str(spec).lower() if isinstance(spec, bool) else str(spec)
