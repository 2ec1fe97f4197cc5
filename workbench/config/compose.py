"""Composition: one config built layer by layer (presets, the experiment, a variant, overrides, a size).

``apply`` takes one layer: its shape is checked, its ``model.norm_eps`` read as the norm spec's eps
(``specs.alias_norm_eps``), its component specs merged by ``ComponentSpec.merged`` and every other key
by a typed OmegaConf merge (a wrong type or unknown key fails at the layer that introduced it, naming
that file), and each dotted key it sets recorded in ``origins`` with the file and the key as written
there, so later errors point at the line to edit. ``resolve`` gives the plain result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from components.config import COMPONENT_FIELDS

from .errors import ConfigError, from_omegaconf
from .experiment import Origins
from .schema import SECTIONS, VariantSchema, keys_at, shape_problem
from .specs import ComponentSpec, alias_norm_eps, clears_norm_eps, flatten, spell_norm_eps

NORM_EPS_KEY = "model.norm.eps"


class Composition:
    """A config being composed: the OmegaConf config of plain keys, the component specs, the origins."""

    def __init__(self, schema: type, conf=None, specs: dict[str, ComponentSpec] | None = None,
                 origins: Origins | None = None, eps_alias: bool = False):
        self.schema = schema
        self.conf = OmegaConf.structured(schema) if conf is None else conf
        if specs is None:
            specs = {key: ComponentSpec.parse(self.conf.model[key]) for key in COMPONENT_FIELDS}
        self.specs = dict(specs)
        self.origins: Origins = dict(origins or {})
        self.eps_alias = eps_alias  # the norm's eps was written as model.norm_eps (specs.alias_norm_eps)

    def copy(self) -> Composition:
        """An independent copy: merges return new OmegaConf objects, so the config itself is shared."""
        return Composition(self.schema, self.conf, self.specs, self.origins, self.eps_alias)

    def variant_base(self) -> Composition:
        """A variant's composition, starting from this experiment's model/data/train (and their origins)."""
        sections = {s: OmegaConf.to_container(self.conf[s], resolve=False) for s in SECTIONS}
        origins = {k: o for k, o in self.origins.items() if k.partition(".")[0] in SECTIONS}
        conf = OmegaConf.merge(OmegaConf.structured(VariantSchema), sections)
        return Composition(VariantSchema, conf, self.specs, origins, self.eps_alias)

    def apply(self, layer: Mapping, source: str, prefix: str = "", written: Callable[[str], str] | None = None) -> None:
        """Merge ``layer`` (set in ``source``); errors name ``prefix + key``, origins ``written(key)``
        (default ``prefix + key``)."""
        written = written or (lambda key: prefix + key)
        _check_shape(layer, source, self.schema, prefix)
        plain, specs, eps_alias = self._split(layer, source, written)
        try:
            self.conf = OmegaConf.merge(self.conf, plain)
        except OmegaConfBaseException as exc:
            raise from_omegaconf(exc, source, prefix, lambda parent: keys_at(self.schema, parent)) from None
        eps, eps_origin = self.specs["norm"].options.get("eps"), self.origins.get(NORM_EPS_KEY)
        for key, value in specs.items():
            self.specs[key] = self.specs[key].merged(value)
        if self.eps_alias and clears_norm_eps(layer.get("model")):
            self.specs["norm"] = self.specs["norm"].without("eps")
        self._record(layer, source, written)
        self.eps_alias = eps_alias
        if eps_alias and "eps" not in self.specs["norm"].options and eps is not None:  # norm_eps outlives a change of norm
            self.specs["norm"] = self.specs["norm"].merged({"eps": eps})
        if eps_alias and isinstance(layer.get("model"), Mapping) and "norm_eps" in layer["model"]:
            self.origins[NORM_EPS_KEY] = (source, written("model.norm_eps"))
        elif eps_alias and eps_origin is not None:  # carried over a change of norm: still where norm_eps was written
            self.origins[NORM_EPS_KEY] = eps_origin

    def _split(self, layer: Mapping, source: str, written: Callable[[str], str]) -> tuple[dict, dict, bool]:
        """(``layer`` without its component specs, the specs, whether the norm's eps is then written as norm_eps)."""
        model = layer.get("model")
        if not isinstance(model, Mapping):
            return dict(layer), {}, self.eps_alias
        try:
            model, eps_alias = alias_norm_eps(model, self.eps_alias)
        except ValueError as exc:
            raise ConfigError(source, written("model.norm_eps"), str(exc)) from None
        specs = {key: model.pop(key) for key in COMPONENT_FIELDS if key in model}
        return {**layer, "model": model}, specs, eps_alias

    def _record(self, layer: Mapping, source: str, written: Callable[[str], str]) -> None:
        model = layer.get("model")
        for key in [k for k in COMPONENT_FIELDS if isinstance(model, Mapping) and k in model and ComponentSpec.replaces(model[k])]:
            spec = f"model.{key}"  # a replaced component spec takes its options' origins with it
            self.origins = {k: o for k, o in self.origins.items() if k != spec and not k.startswith(spec + ".")}
        for key in flatten(layer):
            self.origins[key] = (source, written(key))

    def resolve(self, source: str, prefix: str = "") -> dict[str, Any]:
        """The composed config as plain containers, interpolations resolved, component specs canonical."""
        try:
            plain = OmegaConf.to_container(self.conf, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            raise from_omegaconf(exc, source, prefix) from None
        if isinstance(plain.get("model"), dict):
            model = {**plain["model"], **{key: spec.canonical() for key, spec in self.specs.items()}}
            plain["model"] = spell_norm_eps(model, self.eps_alias)
        return plain  # type: ignore[return-value]


def _check_shape(update: Mapping, source: str, schema: type, prefix: str) -> None:
    """Sections and mappings where the schema wants them: OmegaConf's own errors for these name no key."""
    for section in SECTIONS + ("eval",):
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
