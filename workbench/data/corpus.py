"""The raw text: documents from the standard library or from files, capped, then split train/val.

A document is one file. The split is by document name (crc32 vs `val_fraction`), so it is
deterministic, independent of file order, and stable when documents are added.
"""

from __future__ import annotations

import glob
import logging
import os
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .settings import DataSettings

log = logging.getLogger(__name__)

# Pruned anywhere in the stdlib tree: installed packages and test suites (not library code).
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})
# Pruned at the stdlib top level: generated tables and text (codec maps, pydoc topics), not source.
SKIP_TOP_DIRS = frozenset({"encodings", "pydoc_data"})


@dataclass(frozen=True)
class Document:
    name: str  # posix path relative to its root (stdlib or base_dir); keys the split and the fingerprint
    text: str


def stdlib_root() -> Path:
    """The running interpreter's standard library (the base install's, also inside a venv)."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[str]:
    """Relative posix paths of the stdlib's .py files, sorted, without packages, tests and generated data."""
    root = Path(root or stdlib_root())
    found = []
    for folder, dirs, files in os.walk(root):
        top = Path(folder) == root
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not (top and d in SKIP_TOP_DIRS)]
        found += [Path(folder, f).relative_to(root).as_posix() for f in files if f.endswith(".py")]
    return sorted(found)


def load_corpus(settings: DataSettings, base_dir: Path) -> list[Document]:
    """The documents `settings` name, in order, until `max_bytes` raw bytes (the last one cut at a line end)."""
    if settings.source == "stdlib":
        root = stdlib_root()
        files = [(name, root / name) for name in stdlib_files(root)]
    else:
        files = _expand_paths(settings.paths, Path(base_dir))
    docs, budget = [], settings.max_bytes
    for name, path in files:
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise DataError("data.paths", f"cannot read {path}: {err.strerror or err}") from None
        if settings.source != "stdlib" and not looks_like_text(raw):
            raise DataError("data.paths", f"{path} is not a UTF-8 text file (binary content); remove it from data.paths "
                                          f"or narrow the glob")
        full = len(raw) <= budget
        raw = raw if full else _cut(raw, budget)
        budget -= len(raw)
        text = raw.decode("utf-8", errors="replace")
        if text.strip():
            docs.append(Document(name, text))
        if not full or budget == 0:
            break
    if not docs:
        where = "the standard library" if settings.source == "stdlib" else ", ".join(settings.paths)
        raise DataError("data.paths", f"empty corpus: no text in {where}")
    log.debug("corpus: %d documents, %d bytes", len(docs), settings.max_bytes - budget)
    return docs


def looks_like_text(raw: bytes, sample: int = 1 << 16) -> bool:
    """False for binary data: a NUL byte, or more than 1% undecodable UTF-8, in the first 64 KiB."""
    head = raw[:sample]
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    return text.count("\ufffd") <= 0.01 * max(len(text), 1)


def split_documents(docs: list[Document], val_fraction: float) -> tuple[list[Document], list[Document]]:
    """Deterministic (train, val), both non-empty: by document, or by text when there is one document."""
    if len(docs) == 1:
        return _split_text(docs[0], val_fraction)
    draws = [zlib.crc32(d.name.encode("utf-8")) / 2**32 for d in docs]
    is_val = [u < val_fraction for u in draws]
    if not any(is_val):  # too few documents for the fraction: hold out the one with the lowest draw
        is_val[min(range(len(docs)), key=draws.__getitem__)] = True
    if all(is_val):
        is_val[max(range(len(docs)), key=draws.__getitem__)] = False
    train = [d for d, v in zip(docs, is_val) if not v]
    val = [d for d, v in zip(docs, is_val) if v]
    return train, val


def _split_text(doc: Document, val_fraction: float) -> tuple[list[Document], list[Document]]:
    """The last `val_fraction` of a single document, cut at a line start when there is one, is val."""
    text = doc.text
    if len(text) < 2:
        raise DataError("data.paths", f"corpus too small to split into train and val ({len(text)} characters)")
    cut = min(max(round(len(text) * (1.0 - val_fraction)), 1), len(text) - 1)
    line_start = text.rfind("\n", 0, cut) + 1
    if 0 < line_start < len(text):
        cut = line_start
    return [Document(doc.name, text[:cut])], [Document(doc.name + "#val", text[cut:])]


def _expand_paths(patterns: list[str], base_dir: Path) -> list[tuple[str, Path]]:
    """Each entry is a file or a glob (sorted matches, `**` recursive); duplicates keep their first place."""
    seen, out = set(), []
    for pattern in patterns:
        full = Path(pattern).expanduser()
        full = full if full.is_absolute() else base_dir / full
        if glob.has_magic(str(full)):
            matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if os.path.isfile(p))
            if not matches:
                raise DataError("data.paths", f"{pattern!r} matches no file (looked in {base_dir})")
        elif full.is_dir():
            raise DataError("data.paths", f"{pattern!r} is a directory; give files or a glob like '{pattern}/**/*.txt'")
        elif not full.is_file():
            raise DataError("data.paths", f"{pattern!r} does not exist (looked for {full})")
        else:
            matches = [full]
        for path in matches:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                out.append((_name(path, base_dir), path))
    return out


def _name(path: Path, base_dir: Path) -> str:
    try:
        return path.resolve().relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _cut(raw: bytes, budget: int) -> bytes:
    """The first `budget` bytes, shortened to the last line end, else to a UTF-8 character boundary."""
    end = raw.rfind(b"\n", 0, budget) + 1
    if end > 0:
        return raw[:end]
    while budget > 0 and (raw[budget] & 0xC0) == 0x80:  # continuation byte: do not split a character
        budget -= 1
    return raw[:budget]
