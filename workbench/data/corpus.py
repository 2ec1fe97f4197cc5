"""The raw text: documents from the standard library or from files, capped at `max_bytes`, as a stream.

A document is one text file, one JSON line or one Parquet row (see `formats`); the split into train
and val is `split`'s. Documents are yielded one at a time, and a `Reading` records whether the cap
stopped the reading early; a text file over `formats.BIG_DOC` bytes is never held whole but
comes as a `LongDocument` of line-aligned segments.
"""

from __future__ import annotations

import codecs
import glob
import logging
import os
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from . import formats
from .formats import Counter, RawDocument, looks_like_text, read_documents
from .settings import DataSettings

log = logging.getLogger(__name__)

# Pruned anywhere in the stdlib tree: installed packages and test suites (not library code).
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})
# Pruned at the stdlib top level: generated tables and text (codec maps, pydoc topics), not source.
SKIP_TOP_DIRS = frozenset({"encodings", "pydoc_data"})
SEGMENT_CHARS = 1 << 20  # a longer document is encoded in line-aligned segments of at most this many characters
HOLD_BYTES = 1 << 20  # a streamed file's bytes held back to cut the cap at a line end


@dataclass(frozen=True)
class Document:
    name: str  # posix path relative to its root (stdlib or base_dir), `:N` for a record; keys split and fingerprint
    text: str


@dataclass(frozen=True)
class LongDocument:
    """A document too large to hold: its text as line-aligned segments of at most SEGMENT_CHARS, read
    lazily (exhaust `segments` before asking for the next document)."""

    name: str
    segments: Iterator[str]


@dataclass
class Reading:
    """What the last pass of `iter_documents` read of its input files: for the note on the cap."""

    files: int  # input files found
    files_opened: int = 0
    capped: bool = False  # max_bytes stopped the reading with input left (a document cut, or more to read)


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


def source_files(settings: DataSettings, base_dir: Path) -> list[tuple[str, Path]]:
    """(document name, path) of every input file, in reading order; missing files are a `DataError`."""
    if settings.source == "stdlib":
        root = stdlib_root()
        return [(name, root / name) for name in stdlib_files(root)]
    return _expand_paths(settings.paths, Path(base_dir))


def iter_documents(settings: DataSettings, base_dir: Path, files: list[tuple[str, Path]] | None = None,
                   count: Counter | None = None, reading: Reading | None = None) -> Iterator[Document | LongDocument]:
    """The non-blank documents `settings` name, in order, until `max_bytes` bytes of UTF-8 (the last one
    cut at a line end). `count` is told the on-disk bytes read (progress); `reading`, what was read."""
    files = source_files(settings, base_dir) if files is None else files
    reading = reading or Reading(len(files))
    reading.files, reading.files_opened, reading.capped = len(files), 0, False
    budget = _Budget(settings.max_bytes)
    for opened, (name, path) in enumerate(files, 1):
        for raw in _raw_documents(settings, name, path, count):
            if budget.left == 0:  # the cap was reached at a document's end, and there is more
                reading.capped = True
                return
            reading.files_opened = opened
            if raw.data is not None:
                full = len(raw.data) <= budget.left
                data = raw.data if full else _cut(raw.data, budget.left)
                budget.left -= len(data)
                text = data.decode("utf-8", errors="replace")
                if text.strip():
                    yield Document(raw.name, text)
                if not full:
                    reading.capped = True
                    return
            elif budget.left <= formats.BIG_DOC:  # the cap cuts this file (over BIG_DOC): read what it keeps
                yield from _held(raw, budget)
                reading.capped = True
                return
            else:
                yield LongDocument(raw.name, segment(_decode(_capped(raw.blocks, budget))))
                if budget.cut:
                    reading.capped = True
                    return


def load_corpus(settings: DataSettings, base_dir: Path) -> list[Document]:
    """Every document in memory (small corpora, tests): `iter_documents` as a list."""
    docs = [d if isinstance(d, Document) else Document(d.name, "".join(d.segments))
            for d in iter_documents(settings, base_dir)]
    if not docs:
        raise empty_corpus(settings)
    log.debug("corpus: %d documents", len(docs))
    return docs


def empty_corpus(settings: DataSettings) -> DataError:
    where = "the standard library" if settings.source == "stdlib" else ", ".join(settings.paths)
    return DataError("data.paths", f"empty corpus: no text in {where}")


def segment(texts: Iterable[str], limit: int = SEGMENT_CHARS) -> Iterator[str]:
    """The concatenation of `texts` cut into pieces of at most `limit` characters, each ending at the
    last line end that fits (a longer line is cut at `limit`). Depends on the text only, not on how it
    was chunked into `texts`; a text up to `limit` is one piece."""
    buffer = ""
    for text in texts:
        buffer += text
        start = 0
        while len(buffer) - start > limit:
            end = buffer.rfind("\n", start, start + limit) + 1
            end = end if end > start else start + limit
            yield buffer[start:end]
            start = end
        buffer = buffer[start:]
    if buffer:
        yield buffer


class _Budget:
    """Bytes left under `max_bytes`; `cut` once the cap cut a streamed document."""

    def __init__(self, max_bytes: int | None):
        self.left = float("inf") if max_bytes is None else max_bytes
        self.cut = False


def _raw_documents(settings: DataSettings, name: str, path: Path, count: Counter | None) -> Iterator[RawDocument]:
    if settings.source == "stdlib":  # trusted .py sources: read as they are (no format, no text check)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DataError("data.paths", f"cannot read {path}: {err.strerror or err}") from None
        if count:
            count(len(data))
        yield RawDocument(name, data=data)
    else:
        yield from read_documents(path, name, settings.text_field, count)


def _held(raw: RawDocument, budget: _Budget) -> Iterator[Document]:
    """A streamed file that the cap cuts within BIG_DOC bytes: read up to the cap, cut as `_cut` does."""
    data = b""
    for block in raw.blocks:
        data += block
        if len(data) > budget.left:
            break
    data = data if len(data) <= budget.left else _cut(data, int(budget.left))
    text = data.decode("utf-8", errors="replace")
    if text.strip():
        yield Document(raw.name, text)


def _capped(blocks: Iterator[bytes], budget: _Budget) -> Iterator[bytes]:
    """A streamed file's bytes up to the budget, cut like `_cut` at the last line end before it: bytes
    after the last newline are held back (up to HOLD_BYTES) until the next block shows where lines end."""
    held, emitted = b"", False
    for block in blocks:
        data = held + block
        if len(data) > budget.left:
            left = int(budget.left)
            end = data.rfind(b"\n", 0, left) + 1
            if end == 0 and not emitted:
                end = len(_cut(data, left))
            budget.left -= end
            budget.cut = True
            if end:
                yield data[:end]
            return
        end = data.rfind(b"\n") + 1
        if len(data) - end > HOLD_BYTES:
            end = len(data)
        if end:
            budget.left -= end
            emitted = True
            yield data[:end]
        held = data[end:]
    if held:
        budget.left -= len(held)
        yield held


def _decode(blocks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 decoding across block boundaries, undecodable bytes replaced (as `bytes.decode` does)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for block in blocks:
        text = decoder.decode(block)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


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


__all__ = ["Document", "LongDocument", "Reading", "empty_corpus", "iter_documents", "load_corpus", "looks_like_text",
           "segment", "source_files", "stdlib_files", "stdlib_root"]
