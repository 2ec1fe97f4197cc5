"""One registry of interchangeable components, with kinds ("norm", "ffn", ...) as namespaces.

Adding a component is one decorated class; third parties register theirs by importing a module
(listed under ``imports:`` in an experiment) or through the entry-point group
``workbench.components``, loaded on first lookup.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.components"


class UnknownComponentError(KeyError):
    """A kind or name that is not registered; the message names the closest match and all options."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}available: {', '.join(options) or '(none)'}"


class Registry:
    """Maps (kind, name) to a factory (a class or function) and a one-line description."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {}
        self._plugins_loaded = False

    def register(self, kind: str, name: str, description: str | None = None):
        """Decorator: ``@registry.register("norm", "rmsnorm")``. Re-registering a name warns."""

        def decorate(factory):
            table = self._entries.setdefault(kind, {})
            if name in table and table[name].factory is not factory:
                warnings.warn(f"{kind} '{name}' re-registered: {table[name].factory} replaced by {factory}")
            table[name] = Entry(kind, name, factory, description or _first_line(factory))
            return factory

        return decorate

    def load_plugins(self) -> None:
        """Import every module advertised in the ``workbench.components`` entry-point group once."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not take the library down
                log.warning("could not load component plugin %s: %s", ep.value, exc)

    @staticmethod
    def import_modules(modules: list[str]) -> None:
        """Import user modules so their ``@registry.register`` decorators run."""
        for module in modules:
            importlib.import_module(module)

    def kinds(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def available(self, kind: str) -> list[str]:
        self.load_plugins()
        return sorted(self._table(kind))

    def entries(self, kind: str) -> list[Entry]:
        return [self._table(kind)[n] for n in self.available(kind)]

    def _table(self, kind: str) -> dict[str, Entry]:
        if kind not in self._entries:
            raise UnknownComponentError(f"unknown component kind '{kind}' ({_suggest(kind, sorted(self._entries))})")
        return self._entries[kind]

    def get(self, kind: str, name: str) -> Entry:
        self.load_plugins()
        table = self._table(kind)
        if name not in table:
            raise UnknownComponentError(f"unknown {kind} '{name}' ({_suggest(str(name), sorted(table))})")
        return table[name]

    def __contains__(self, key: tuple[str, str]) -> bool:
        self.load_plugins()
        kind, name = key
        return name in self._entries.get(kind, {})

    def build(self, kind: str, spec: str | Mapping[str, Any], **context: Any) -> Any:
        """Build a component from a name or a ``{"name": ..., **options}`` mapping.

        ``context`` carries the sizes the caller knows (``dim``, ``head_dim``, ...); each factory
        receives only the ones its signature declares, so one call site serves a whole family.
        Options from the mapping are passed strictly: an unknown option is an error.
        """
        if isinstance(spec, Mapping):
            options = dict(spec)
            if "name" not in options:
                raise UnknownComponentError(f"{kind} spec {options} has no 'name' ({_suggest('', self.available(kind))})")
            name = options.pop("name")
        else:
            name, options = spec, {}
        entry = self.get(kind, name)
        params = inspect.signature(entry.factory).parameters
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        named = [k for k, p in params.items() if p.kind not in variadic]
        # A bare (*args, **kwargs) is a pass-through (e.g. a module without its own __init__ shows
        # nn.Module's): it takes nothing, so it gets no context and no options.
        takes_any = bool(named) and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in options if k not in named and not takes_any]
        if unknown:
            raise TypeError(f"{kind} '{name}' has no option {unknown[0]!r} (options: {', '.join(named) or 'none'})")
        kwargs = {k: v for k, v in context.items() if takes_any or k in named}
        kwargs.update(options)
        return entry.factory(**kwargs)


registry = Registry()
