"""`DataSettings`: the `data:` config section as a plain dataclass, validated with `DataError`s."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

SOURCES = ("stdlib", "files")


@dataclass
class DataSettings:
    """Where the text comes from and how it becomes tokens (mirrors the `data:` config keys)."""

    source: str = "stdlib"  # stdlib: this interpreter's standard-library .py sources | files: `paths`
    paths: list[str] = field(default_factory=list)  # files or globs; relative ones resolve against base_dir
    max_bytes: int = 4_000_000  # corpus cap; 4 MB keeps a cold prepare to a few seconds on 2 cores
    val_fraction: float = 0.05  # share of documents (or of the text, for one document) held out
    vocab_size: int = 2048  # sentencepiece BPE vocabulary, 256 byte-fallback pieces included
    cache_dir: str | None = None  # None: $WORKBENCH_CACHE, else ~/.cache/workbench

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> DataSettings:
        """Build from a plain mapping (a YAML section); unknown keys are a `DataError`."""
        mapping = dict(mapping or {})
        names = [f.name for f in dataclasses.fields(cls)]
        for key in mapping:
            if key not in names:
                raise DataError(f"data.{key}", f"unknown key (allowed: {', '.join(names)})")
        settings = cls(**mapping)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise `DataError` naming the first invalid field; normalises `paths` to a list of str."""
        if self.source not in SOURCES:
            raise DataError("data.source", f"{self.source!r} is not a source (allowed: {', '.join(SOURCES)})")
        if isinstance(self.paths, (str, os.PathLike)):
            self.paths = [self.paths]
        try:
            self.paths = [os.fspath(p) for p in self.paths]
        except TypeError:
            raise DataError("data.paths", f"{self.paths!r} is not a list of file paths or globs") from None
        if self.source == "files" and not self.paths:
            raise DataError("data.paths", "source 'files' needs at least one file or glob")
        if self.source == "stdlib" and self.paths:
            raise DataError("data.paths", "paths are only read with data.source=files (source is 'stdlib')")
        _require_int("data.max_bytes", self.max_bytes, minimum=1)
        _require_int("data.vocab_size", self.vocab_size, minimum=1)
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)) \
                or not 0.0 < self.val_fraction < 1.0:
            raise DataError("data.val_fraction", f"{self.val_fraction!r} must be a number strictly between 0 and 1")

    def cache_root(self, base_dir: Path) -> Path:
        """The folder holding one sub-folder per prepared corpus (keyed by fingerprint)."""
        root = self.cache_dir or os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
        root = Path(root).expanduser()
        return root if root.is_absolute() else Path(base_dir) / root


def _require_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(key, f"{value!r} must be an integer >= {minimum}")
