"""ConfigError: the one error type of config loading; one line naming the file, the key and the fix.

The CLI prints ``str(err)`` as is and exits with status 2, so every message here must stand alone:
``experiments/a.yaml: train.steps: invalid value 0 (allowed: an integer >= 1)``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

COMMAND_LINE = "command line"  # the "file" of errors caused by key=value overrides


def display_path(source: str | os.PathLike | None) -> str | None:
    """A source as the user should see it: relative to the working directory when inside it."""
    if source is None or str(source) == COMMAND_LINE:
        return None if source is None else COMMAND_LINE
    path = Path(source)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """``", did you mean 'x'?"`` for the closest option, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.5)
    return f", did you mean '{close[0]}'?" if close else ""


class ConfigError(Exception):
    """An experiment config the workbench cannot run.

    ``str(err)`` is one line, ``"<file>: <key>: <problem> (allowed: ...)"``; ``file`` is the YAML
    file to edit (or ``"command line"``), ``key`` the dotted key (``train.steps``), either may be None.
    """

    def __init__(self, file: str | os.PathLike | None, key: str | None, problem: str, allowed: str | None = None):
        self.file = display_path(file)
        self.key = key
        self.problem = " ".join(str(problem).split())
        self.allowed = " ".join(str(allowed).split()) if allowed else None
        message = ": ".join(part for part in (self.file, key, self.problem) if part)
        if self.allowed:
            message += f" (allowed: {self.allowed})"
        super().__init__(message)


def from_omegaconf(exc: OmegaConfBaseException, file, prefix: str = "", keys_at=None) -> ConfigError:
    """Translate an OmegaConf merge/resolve error into a ConfigError.

    ``prefix`` is prepended to OmegaConf's ``full_key`` (``variants.NAME.``); ``keys_at(parent)``
    lists the keys valid under a dotted parent, for the "unknown key" message.
    """
    full_key = getattr(exc, "full_key", None) or ""
    key = prefix + full_key if full_key else (prefix.rstrip(".") or None)
    text = str(getattr(exc, "msg", None) or exc).strip().splitlines()
    first = text[0].strip() if text else type(exc).__name__
    if isinstance(exc, (ConfigKeyError, ConfigAttributeError)) and " not in " in first and full_key:
        parent, _, leaf = full_key.rpartition(".")
        options = keys_at(parent) if keys_at else None
        if options:
            return ConfigError(file, key, f"unknown key '{leaf}'{did_you_mean(leaf, options)}", ", ".join(options))
        return ConfigError(file, key, f"unknown key '{leaf}'")
    if "is not a ListConfig" in first:
        return ConfigError(file, key, "expected a list", "a YAML list such as [a, b]")
    if "is not Optional" in first or first.startswith("Incompatible value 'None'"):
        return ConfigError(file, key, "must not be null")
    return ConfigError(file, key, first.rstrip("."))
