"""One registry of interchangeable components, with kinds ("norm", "ffn", ...) as namespaces.

Adding a component is one decorated class; third parties register theirs by importing a module
(listed under ``imports:`` in an experiment) or through the entry-point group
``workbench.components``, loaded on first lookup. What the model relies on is declared at
registration as traits (``components.contract``); a component is chosen by a spec, its name or
``{"name": ..., option: value}``, and the options are checked against the factory's signature.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import types
import typing
import warnings
import weakref
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Mapping

from torch import nn

from .contract import ContractWarning, bounds_of, kind_contract

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.components"


class UnknownComponentError(KeyError):
    """A kind or name that is not registered; the message names the closest match and all options."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidOption(TypeError):
    """An option a component does not take, or a value of the wrong type; the message is one line."""


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    traits: Mapping[str, Any]  # read-only; every trait of the kind, defaults filled


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}available: {', '.join(options) or '(none)'}"


def split_spec(kind: str, spec: Any) -> tuple[str, dict[str, Any]]:
    """(name, options) of a spec: a name, or a mapping with ``name`` and the options."""
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise UnknownComponentError(f"{kind} spec {options} has no 'name'")
        name = options.pop("name")
    else:
        name, options = spec, {}
    if not isinstance(name, str):
        raise UnknownComponentError(f"{kind} must be a name or {{name: ..., option: value}}, got {name!r}")
    return name, options


# --- options: a factory's keyword parameters and their annotated types ----------------------------


def _parameters(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """(named parameters, whether it also takes **kwargs). A bare (*args, **kwargs) is a pass-through
    (e.g. a module without its own __init__ shows nn.Module's): it takes nothing."""
    params = inspect.signature(factory).parameters
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    named = [k for k, p in params.items() if p.kind not in variadic]
    takes_any = bool(named) and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return named, takes_any


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)  # keeps Annotated[..., Bound(...)]
    except Exception:  # an annotation that does not resolve: its values go unchecked
        return {}


def _accepts(hint: Any, value: Any, bounded: bool = True) -> bool | None:
    """Whether ``value`` fits the annotation ``hint`` (int/float/bool/str/None, unions, Literal, and
    with ``bounded`` the ``Bound`` an ``Annotated`` declares); None where it says nothing checkable."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        verdict = _accepts(hint.__origin__, value, bounded)
        if bounded and verdict is not False and not all(b.accepts(value) for b in bounds_of(hint)):
            return False
        return verdict
    if origin in (typing.Union, types.UnionType):
        verdicts = [_accepts(a, value, bounded) for a in typing.get_args(hint)]
        return True if True in verdicts else (None if None in verdicts else False)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an int is a fine float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    return None


def _type_name(hint: Any, bounded: bool = False) -> str:
    """The annotation in words (``float | None``); with ``bounded``, its declared range too (``float > 0``)."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base = _type_name(hint.__origin__)
        if not bounded or not bounds_of(hint):
            return base
        ranges = " and ".join(filter(None, (str(b) for b in bounds_of(hint))))
        return " ".join(filter(None, ("finite" if base == "float" else "", base, ranges)))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a, bounded) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


class Registry:
    """Maps (kind, name) to a factory (a class or function), a one-line description and its traits."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {}
        self._plugins_loaded = False
        self._built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> the Entry that built it

    def register(self, kind: str, name: str, description: str | None = None, **traits: Any):
        """Decorator: ``@registry.register("ffn", "swiglu", width="glu", residual=("down",))``.

        ``traits`` are the kind's declarable properties (``components.contract.KINDS``); an unknown
        trait or a wrongly typed value raises TypeError here, an omitted one gets its default (with a
        ContractWarning where that default changes what is compared), and so does a factory that is
        not the kind's ``base`` (a placement must be an nn.Module class). Re-registering a name warns.
        """
        contract = kind_contract(kind)
        declared: dict[str, Any] = {}
        for key, value in traits.items():
            trait = contract.trait(key)
            if trait is None:
                known = ", ".join(t.name for t in contract.traits)
                raise TypeError(f"{kind} '{name}': unknown trait '{key}' (traits of {kind}: {known})")
            declared[key] = trait.check(kind, name, value)
        for trait in contract.traits:
            if trait.name not in declared:
                declared[trait.name] = trait.default
                if trait.if_missing:
                    warnings.warn(f"{kind} '{name}' {trait.if_missing}", ContractWarning, stacklevel=2)
        frozen = types.MappingProxyType(declared)

        def decorate(factory):
            if contract.base is not None and not (isinstance(factory, type) and issubclass(factory, contract.base)):
                raise TypeError(f"{kind} '{name}' must be a subclass of {contract.base_name} ({contract.interface}), not {factory!r}")
            table = self._entries.setdefault(kind, {})
            if name in table and table[name].factory is not factory:
                warnings.warn(f"{kind} '{name}' re-registered: {table[name].factory} replaced by {factory}")
            table[name] = Entry(kind, name, factory, description or _first_line(factory), frozen)
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
        if not isinstance(name, str) or name not in table:
            raise UnknownComponentError(f"unknown {kind} '{name}' ({_suggest(str(name), sorted(table))})")
        return table[name]

    def __contains__(self, key: tuple[str, str]) -> bool:
        self.load_plugins()
        kind, name = key
        return name in self._entries.get(kind, {})

    def options(self, kind: str, name: str, context_names: tuple[str, ...] = ()) -> dict[str, str]:
        """{option: its annotated type, in words} a spec may set for an entry; ``context_names``
        (what the caller passes itself) are not options."""
        named, _ = _parameters(self.get(kind, name).factory)
        hints = _hints(self.get(kind, name).factory)
        return {k: _type_name(hints[k]) if k in hints else "any" for k in named if k not in context_names}

    def validate(self, kind: str, spec: Any, context_names: tuple[str, ...] | list[str] = ()) -> str | dict[str, Any]:
        """Check a spec before anything is built; return it canonical (a name when it has no options,
        else ``{"name": ..., **options}``).

        Raises UnknownComponentError for an unknown name (with a did-you-mean) and InvalidOption for an
        option the factory's signature does not take, one of ``context_names`` (sizes the caller
        passes, which an option must not override), or a value whose type does not match the
        parameter's annotation (int, float, bool, str, None, Literal; an int is accepted for a float)
        or lies outside the range it declares (``Annotated[float, Bound(gt=0)]``, components.contract).
        """
        try:
            name, options = split_spec(kind, spec)
        except UnknownComponentError as exc:
            raise UnknownComponentError(f"{exc} ({_suggest('', self.available(kind))})") from None
        factory = self.get(kind, name).factory
        named, takes_any = _parameters(factory)
        hints = _hints(factory)
        listing = self.options(kind, name, tuple(context_names))
        listed = f"options: {', '.join(f'{k}: {t}' for k, t in listing.items()) or 'none'}"
        for key, value in options.items():
            if key in context_names:
                raise InvalidOption(f"{kind} '{name}': '{key}' is set by the model, not an option ({listed})")
            if key not in named and not takes_any:
                raise InvalidOption(f"{kind} '{name}' has no option {key!r} ({listed})")
            if key in hints and _accepts(hints[key], value, bounded=False) is False:
                raise InvalidOption(
                    f"{kind} '{name}' option {key}={value!r} must be {_type_name(hints[key])}, "
                    f"not {type(value).__name__} ({listed})"
                )
            if key in hints and _accepts(hints[key], value) is False:  # the right type, outside its declared range
                raise InvalidOption(f"{kind} '{name}' option {key}={value!r} must be {_type_name(hints[key], True)} ({listed})")
        return {"name": name, **options} if options else name

    def build(self, kind: str, spec: str | Mapping[str, Any], context: Any = None, /, **sizes: Any) -> Any:
        """Build a component from a name or a ``{"name": ..., **options}`` mapping.

        ``context`` (a ``components.context.BuildContext``) carries what the model knows; the factory
        receives those of the kind's declared sizes and settings (``KINDS[kind]``) that its signature
        names, so one call site serves a whole family. ``sizes`` are given by hand (``dim=512``) and
        win over the context's. Options from the mapping are passed strictly (``validate``): an
        unknown option is an error, so is one of the kind's sizes where a context is given, and an
        option overrides a setting of the same name.
        """
        contract = kind_contract(kind)
        name, options = split_spec(kind, self.validate(kind, spec, contract.sizes if context is not None else ()))
        factory = self.get(kind, name).factory
        named, takes_any = _parameters(factory)
        if context is not None:
            sizes = {**{k: getattr(context, k) for k in contract.sizes + contract.settings}, **sizes}
        kwargs = {k: v for k, v in sizes.items() if takes_any or k in named}
        kwargs.update(options)
        built = factory(**kwargs)
        if isinstance(built, nn.Module):
            self._built[built] = self.get(kind, name)
        return built

    def built_by(self, module: Any) -> Entry | None:
        """The entry whose ``build`` made ``module`` (None for one built otherwise): the model reads the
        roles of a component's parameters from the entry's ``weights`` declaration."""
        return self._built.get(module) if isinstance(module, nn.Module) else None

registry = Registry()
