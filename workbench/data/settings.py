"""`DataSettings`: the `data:` config section as a plain dataclass, validated with `DataError`s."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

SOURCES = ("stdlib", "files", "bin")
TOKEN_DTYPES = ("uint16", "uint32")


@dataclass
class DataSettings:
    """Where the text comes from and how it becomes tokens (mirrors the `data:` config keys)."""

    # stdlib: this interpreter's standard-library .py sources | files: `paths` (text, JSON lines, Parquet,
    # .gz/.zst compressed) | bin: a pre-tokenized nanoGPT pair, `paths: [train.bin, val.bin]`
    source: str = "stdlib"
    paths: list[str] = field(default_factory=list)  # files or globs; relative ones resolve against base_dir
    max_bytes: int | None = 4_000_000  # corpus cap (None: no cap); 4 MB keeps a cold prepare to seconds on 2 cores
    val_fraction: float = 0.05  # share of the bytes held out for validation (the rule: split.py)
    vocab_size: int = 2048  # trained sentencepiece vocabulary (256 byte pieces included); source bin: the ids' range
    text_field: str = "text"  # JSON lines / Parquet: the field holding each document's text
    tokenizer: str | None = None  # None: train sentencepiece on the train split | a .model file | a tokenizer.json
    token_dtype: str = "uint16"  # source bin: the ids' type in the .bin files (nanoGPT writes uint16)
    bytes_per_token: float | None = None  # source bin: UTF-8 bytes per val token if known (else no bits per byte)
    workers: int | None = None  # encoding processes (None: min(4, CPU count)); never changes the tokens
    memory_mb: int = 256  # text and ids in flight while encoding, all processes together; never changes the tokens
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
        if self.source == "bin" and len(self.paths) != 2:
            raise DataError("data.paths", f"source 'bin' needs exactly two files, [train.bin, val.bin] "
                                          f"(got {len(self.paths)})")
        if self.source == "stdlib" and self.paths:
            raise DataError("data.paths", "paths are only read with data.source=files or bin (source is 'stdlib')")
        if self.max_bytes is not None:
            _require_int("data.max_bytes", self.max_bytes, minimum=1)
        _require_int("data.vocab_size", self.vocab_size, minimum=1)
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)) \
                or not 0.0 < self.val_fraction < 1.0:
            raise DataError("data.val_fraction", f"{self.val_fraction!r} must be a number strictly between 0 and 1")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise DataError("data.text_field", f"{self.text_field!r} must be a field name")
        if self.tokenizer is not None:
            if not isinstance(self.tokenizer, (str, os.PathLike)) or not os.fspath(self.tokenizer):
                raise DataError("data.tokenizer", f"{self.tokenizer!r} must be the path of a sentencepiece .model "
                                                  "file or a tokenizer.json")
            self.tokenizer = os.fspath(self.tokenizer)
            if self.source == "bin":
                raise DataError("data.tokenizer", "source 'bin' is already tokenized: leave data.tokenizer unset")
        if self.token_dtype not in TOKEN_DTYPES:
            raise DataError("data.token_dtype", f"{self.token_dtype!r} (allowed: {', '.join(TOKEN_DTYPES)})")
        if self.bytes_per_token is not None:
            if self.source != "bin":
                raise DataError("data.bytes_per_token", "only for source 'bin': text sources measure it on the val split")
            if isinstance(self.bytes_per_token, bool) or not isinstance(self.bytes_per_token, (int, float)) \
                    or not self.bytes_per_token > 0:
                raise DataError("data.bytes_per_token", f"{self.bytes_per_token!r} must be a positive number")
        if self.workers is not None:
            _require_int("data.workers", self.workers, minimum=1)
        _require_int("data.memory_mb", self.memory_mb, minimum=1)

    def resolved_workers(self) -> int:
        """`workers`, or min(4, CPU count) when unset."""
        return self.workers or min(4, os.cpu_count() or 1)

    def cache_root(self, base_dir: Path) -> Path:
        """The folder holding one sub-folder per prepared corpus (keyed by fingerprint)."""
        root = self.cache_dir or os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
        root = Path(root).expanduser()
        return root if root.is_absolute() else Path(base_dir) / root

    def check_cache_root(self, base_dir: Path) -> None:
        """Raise `DataError` where the cache folder cannot be a folder: it, or a folder above it, is a file."""
        root = self.cache_root(base_dir)
        existing = next((p for p in (root, *root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            given = "data.cache_dir" if self.cache_dir else ("$WORKBENCH_CACHE" if os.environ.get("WORKBENCH_CACHE")
                                                             else "the default cache folder")
            where = "" if existing == root else f" (a folder above it, {existing}, is a file)"
            raise DataError("data.cache_dir", f"{os.fspath(root)!r} ({given}) is not a folder{where}; "
                                              f"name a folder (created if missing)")


def _require_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(key, f"{value!r} must be an integer >= {minimum}")
