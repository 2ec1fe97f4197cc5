"""Blame: which file and key set a variant's value, so every check's error points at the line to edit."""

from __future__ import annotations

import dataclasses
from typing import Any, NoReturn

from .errors import ConfigError
from .experiment import Experiment, Variant
from .schema import SECTIONS


def lookup(variant: Variant, key: str) -> Any:
    """The value at a dotted key of a variant (``model.norm.eps`` inside a spec); None where absent."""
    section, _, rest = key.partition(".")
    value = getattr(variant, section)
    value = vars(value) if dataclasses.is_dataclass(value) else value  # train: TrainSettings
    for part in rest.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Blame:
    """One variant of ``exp`` and the origins of its keys; ``fail`` raises for a key, naming its file."""

    def __init__(self, exp: Experiment, variant: Variant):
        self.exp, self.variant = exp, variant
        self.train, self.data, self.model = variant.train, variant.data, variant.model

    def fail(self, key: str, problem: str, allowed: str | None = None, related: tuple[str, ...] = ()) -> NoReturn:
        """Raise for ``key``; ``related`` keys took part in the rule (they decide whether to name the variant)."""
        raise self.error(key, problem, allowed, related)

    def error(self, key: str, problem: str, allowed: str | None = None, related: tuple[str, ...] = ()) -> ConfigError:
        source, written = self.origin(key)
        if not written.startswith("variants.") and not all(self.shared(k) for k in (key,) + related):
            problem += f" [variant '{self.variant.name}']"
        return ConfigError(source, written, problem, allowed)

    def origin(self, key: str) -> tuple[str, str]:
        """(file, key as written there) that set ``key``; a spec's name may have been written as
        ``model.norm: NAME`` or as ``model.norm.name``, and a whole spec by its name's origin."""
        origins = self.variant.origins
        if key in origins:
            return origins[key]
        if key.endswith(".name") and key.removesuffix(".name") in origins:
            return origins[key.removesuffix(".name")]
        if key + ".name" in origins:
            source, written = origins[key + ".name"]
            return source, written.removesuffix(".name")
        return str(self.exp.path), key

    def shared(self, key: str) -> bool:
        """Whether every variant has the same value at ``key`` (then naming one is noise)."""
        section = key.partition(".")[0]
        values = [lookup(v, key) for v in self.exp.variants.values()] if section in SECTIONS else [None]
        return section in SECTIONS and all(repr(value) == repr(values[0]) for value in values)

    def value(self, key: str) -> Any:
        return lookup(self.variant, key)
