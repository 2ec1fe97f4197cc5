"""The raw text: documents from the standard library or from files, capped at `max_bytes`, as a stream.

A document is one text file, one JSON line or one Parquet row (see `formats`). The split is by
document name (crc32 vs `val_fraction`), so it is deterministic, independent of file order, and
stable when documents are added; a corpus of one document holds out its tail instead.
Documents are yielded one at a time; a text file over `formats.BIG_DOC` bytes is never held whole but
comes as a `LongDocument` of line-aligned segments.
"""

from __future__ import annotations

import codecs
import glob
import logging
import os
import sysconfig
import zlib
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
                   count: Counter | None = None) -> Iterator[Document | LongDocument]:
    """The non-blank documents `settings` name, in order, until `max_bytes` bytes of UTF-8 (the last one
    cut at a line end). `count` is told the on-disk bytes read (progress)."""
    files = source_files(settings, base_dir) if files is None else files
    budget = _Budget(settings.max_bytes)
    for name, path in files:
        for raw in _raw_documents(settings, name, path, count):
            if raw.data is not None:
                full = len(raw.data) <= budget.left
                data = raw.data if full else _cut(raw.data, budget.left)
                budget.left -= len(data)
                text = data.decode("utf-8", errors="replace")
                if text.strip():
                    yield Document(raw.name, text)
                if not full or budget.left == 0:
                    return
            elif budget.left <= formats.BIG_DOC:  # the cap ends within BIG_DOC: read what it keeps, as a small document
                yield from _held(raw, budget)
                return
            else:
                yield LongDocument(raw.name, segment(_decode(_capped(raw.blocks, budget))))
                if budget.stop:
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


def draw(name: str) -> float:
    """The document's split draw in [0, 1): val when below `val_fraction`."""
    return zlib.crc32(name.encode("utf-8")) / 2**32


def split_documents(docs: list[Document], val_fraction: float) -> tuple[list[Document], list[Document]]:
    """Deterministic (train, val), both non-empty: by document, or by text when there is one document."""
    if len(docs) == 1:
        return split_text(docs[0], val_fraction)
    draws = [draw(d.name) for d in docs]
    is_val = [u < val_fraction for u in draws]
    if not any(is_val):  # too few documents for the fraction: hold out the one with the lowest draw
        is_val[min(range(len(docs)), key=draws.__getitem__)] = True
    if all(is_val):
        is_val[max(range(len(docs)), key=draws.__getitem__)] = False
    train = [d for d, v in zip(docs, is_val) if not v]
    val = [d for d, v in zip(docs, is_val) if v]
    return train, val


def split_text(doc: Document, val_fraction: float) -> tuple[list[Document], list[Document]]:
    """The last `val_fraction` of a single document, cut at a line start when there is one, is val."""
    text = doc.text
    if len(text) < 2:
        raise DataError("data.paths", f"corpus too small to split into train and val ({len(text)} characters)")
    cut = min(max(round(len(text) * (1.0 - val_fraction)), 1), len(text) - 1)
    line_start = text.rfind("\n", 0, cut) + 1
    if 0 < line_start < len(text):
        cut = line_start
    return [Document(doc.name, text[:cut])], [Document(doc.name + "#val", text[cut:])]


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
    """Bytes left under `max_bytes`; `stop` once a streamed document reached it."""

    def __init__(self, max_bytes: int | None):
        self.left = float("inf") if max_bytes is None else max_bytes
        self.stop = False


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
            budget.stop = True
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
    budget.stop = budget.left == 0


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


__all__ = ["Document", "LongDocument", "draw", "empty_corpus", "iter_documents", "load_corpus", "looks_like_text",
           "segment", "source_files", "split_documents", "split_text", "stdlib_files", "stdlib_root"]
