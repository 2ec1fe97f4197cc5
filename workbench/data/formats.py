"""Reading documents out of files: plain text, JSON lines and Parquet, optionally gzip/zstd compressed.

The format follows the extension (`.jsonl`/`.ndjson`, `.parquet`, `.arrow`, anything else is text; `.gz`,
`.zst` outside). A text file is one document; a JSON line, a Parquet or Arrow row is one, its text in
`data.text_field`. `.arrow` files are Arrow IPC streams, what `datasets`' `save_to_disk` writes: such a
folder is read with `paths: [folder/*.arrow]`, offline, without the `datasets` library. A file that cannot be read (corrupt, truncated, binary, a record without the field)
is refused with a one-line `DataError` naming it, never skipped silently.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..distribution import install_hint
from .errors import DataError

BIG_DOC = 32 << 20  # bytes: a text file larger than this is streamed in blocks, never held whole
BLOCK = 4 << 20  # bytes read at a time from a streamed text file
HEAD = 1 << 16  # bytes checked for binary content
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
RECORD_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".arrow": "arrow"}
# The optional library each format needs: (module, pip extra of the workbench that installs it).
EXTRAS = {"zstd": ("zstandard", "zstd"), "parquet": ("pyarrow", "parquet"), "arrow": ("pyarrow", "parquet")}

Counter = Callable[[int], None]  # told how many on-disk bytes were just read (progress)


@dataclass(frozen=True)
class RawDocument:
    """One document's UTF-8 bytes: whole in `data`, or, for a text file over BIG_DOC, as `blocks`
    (read lazily from the open file: consume them before asking for the next document)."""

    name: str
    data: bytes | None = None
    blocks: Iterator[bytes] | None = None


def file_format(path: Path) -> tuple[str, str | None]:
    """(format, compression) from the name: ('jsonl', 'gzip') for `x.jsonl.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    inner = suffixes[-2] if compression and len(suffixes) > 1 else (suffixes[-1] if suffixes and not compression else "")
    return RECORD_FORMATS.get(inner, "text"), compression


def read_documents(path: Path, name: str, text_field: str, count: Counter | None = None) -> Iterator[RawDocument]:
    """The documents of one file, in order; every problem is a `DataError` naming the file."""
    fmt, compression = file_format(path)
    if fmt in ("parquet", "arrow"):
        if compression:
            raise DataError("data.paths", f"{path}: a compressed {fmt.title()} file is not supported (decompress it)")
        yield from (_parquet if fmt == "parquet" else _arrow)(path, name, text_field, count)
        return
    with contextlib.ExitStack() as files:
        with _reading(path, compression):
            stream = _open(path, compression, count, files)
            if fmt == "jsonl":
                yield from _jsonl(stream, path, name, text_field)
            else:
                yield from _text(stream, path, name, compression)


def looks_like_text(raw: bytes, sample: int = HEAD) -> bool:
    """False for binary data: a NUL byte, or more than 1% undecodable UTF-8, in the first 64 KiB."""
    head = raw[:sample]
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    return text.count("\ufffd") <= 0.01 * max(len(text), 1)


def _text(stream: IO[bytes], path: Path, name: str, compression: str | None) -> Iterator[RawDocument]:
    head = _read_up_to(stream, BIG_DOC + 1, None if compression else path.stat().st_size)
    _check_text(head, path)
    if len(head) <= BIG_DOC:
        yield RawDocument(name, data=head)
    else:
        yield RawDocument(name, blocks=_blocks(stream, head, path, compression))


def _read_up_to(stream: IO[bytes], limit: int, size: int | None) -> bytes:
    """The first `limit` bytes (fewer at the end of the file), without allocating `limit` for a small file."""
    if size is not None and size < limit:
        return stream.read(size + 1)
    parts, total = [], 0
    while total < limit:
        part = stream.read(min(BLOCK, limit - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def _blocks(stream: IO[bytes], first: bytes, path: Path, compression: str | None) -> Iterator[bytes]:
    """The rest of a big text file (the consumer's loop runs outside read_documents' error handling)."""
    yield first
    while True:
        with _reading(path, compression):
            block = stream.read(BLOCK)
        if not block:
            return
        yield block


def _jsonl(stream: IO[bytes], path: Path, name: str, text_field: str) -> Iterator[RawDocument]:
    _check_text(stream.peek(HEAD)[:HEAD], path)  # before reading a "line" that may be a whole binary file
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise DataError("data.paths", f"{path}:{lineno}: not a JSON line ({_short(err)})") from None
        text = _field(record, text_field, f"{path}:{lineno}")
        if text:
            yield RawDocument(f"{name}:{lineno}", data=text.encode("utf-8", errors="replace"))


def _parquet(path: Path, name: str, text_field: str, count: Counter | None) -> Iterator[RawDocument]:
    pq = _optional("parquet", path).parquet
    import pyarrow

    try:
        handle = pq.ParquetFile(path)
    except (OSError, pyarrow.ArrowException) as err:
        raise DataError("data.paths", f"{path}: not a readable Parquet file ({_short(err)})") from None
    _check_column(handle.schema_arrow, path, text_field)
    yield from _rows(handle.iter_batches(columns=[text_field], batch_size=1024), path, name, text_field, "Parquet")
    if count:
        count(path.stat().st_size)


def _arrow(path: Path, name: str, text_field: str, count: Counter | None) -> Iterator[RawDocument]:
    pyarrow = _optional("arrow", path)
    import pyarrow.ipc

    with pyarrow.memory_map(str(path)) as source:
        try:
            reader = pyarrow.ipc.open_stream(source)  # datasets' save_to_disk writes the stream format
            batches = iter(reader)
        except pyarrow.ArrowInvalid:
            source.seek(0)
            try:
                reader = pyarrow.ipc.open_file(source)
            except pyarrow.ArrowInvalid as err:
                raise DataError("data.paths", f"{path}: not a readable Arrow file ({_short(err)})") from None
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        _check_column(reader.schema, path, text_field)
        yield from _rows(batches, path, name, text_field, "Arrow")
    if count:
        count(path.stat().st_size)


def _check_column(schema, path: Path, text_field: str) -> None:
    import pyarrow

    if text_field not in schema.names:
        raise DataError("data.text_field", f"{path} has no column {text_field!r} (columns: {', '.join(schema.names)})")
    kind = schema.field(text_field).type
    if not (pyarrow.types.is_string(kind) or pyarrow.types.is_large_string(kind)):
        raise DataError("data.text_field", f"{path}: column {text_field!r} holds {kind}, not text")


def _rows(batches, path: Path, name: str, text_field: str, fmt: str) -> Iterator[RawDocument]:
    """Each row's text of `text_field` (record batches of a Parquet or Arrow file), blank rows skipped."""
    import pyarrow

    row = 0
    try:
        for batch in batches:
            for text in batch.column(batch.schema.get_field_index(text_field)).to_pylist():
                if text:
                    yield RawDocument(f"{name}:{row}", data=text.encode("utf-8", errors="replace"))
                row += 1
    except (OSError, pyarrow.ArrowException) as err:
        raise DataError("data.paths", f"{path}: corrupt {fmt} data near row {row} ({_short(err)})") from None


def _field(record: object, text_field: str, where: str) -> str:
    if not isinstance(record, dict):
        raise DataError("data.paths", f"{where}: a JSON line must be an object with a {text_field!r} field")
    if text_field not in record:
        fields = ", ".join(list(record)[:10]) or "none"
        raise DataError("data.text_field", f"{where} has no field {text_field!r} (fields: {fields})")
    text = record[text_field]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise DataError("data.text_field", f"{where}: field {text_field!r} holds {type(text).__name__}, not text")
    return text


def _check_text(head: bytes, path: Path) -> None:
    if not looks_like_text(head):
        raise DataError("data.paths", f"{path} is not a UTF-8 text file (binary content); remove it from data.paths "
                                      f"or narrow the glob")


class _Counted(io.RawIOBase):
    """A raw file that reports the bytes it reads (on-disk progress, compressed or not)."""

    def __init__(self, raw: IO[bytes], count: Counter):
        self._raw, self._count = raw, count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        self._count(n or 0)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open(path: Path, compression: str | None, count: Counter | None, files: contextlib.ExitStack) -> IO[bytes]:
    """`path` opened for reading, decompressed; every layer is closed by `files`."""
    raw = files.enter_context(open(path, "rb", buffering=0))
    disk: IO[bytes] = files.enter_context(io.BufferedReader(_Counted(raw, count) if count else raw, 1 << 16))
    if compression == "gzip":
        return files.enter_context(gzip.GzipFile(fileobj=disk, mode="rb"))
    if compression == "zstd":
        frames = _ZstdFrames(_optional("zstd", path).ZstdDecompressor(), disk)
        return files.enter_context(io.BufferedReader(frames, 1 << 20))  # buffered: lines for JSON lines
    return disk


class _ZstdFrames(io.RawIOBase):
    """A zstd file's frames, decompressed one after another, as a raw stream. Unlike zstandard's
    stream_reader, which ends quietly where the input does, input that ends inside a frame raises
    EOFError (a truncated file), so a cut file is never read as a shorter document."""

    CHUNK = 32 << 10  # compressed bytes decompressed at a time (bounds the memory of one step)

    def __init__(self, decompressor, disk: IO[bytes]):
        self._decompressor, self._disk = decompressor, disk
        self._frame = None  # the decompressobj of the current frame; None between frames
        self._input, self._output = b"", memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._output:
            data = self._input or self._disk.read(self.CHUNK)
            if not data:
                if self._frame is not None:
                    raise EOFError("the file ends inside a zstd frame")
                return 0
            self._frame = self._frame or self._decompressor.decompressobj()
            self._output = memoryview(self._frame.decompress(data))
            self._input = b""
            if self._frame.eof:  # the frame is complete; what follows it is the next frame
                self._input, self._frame = self._frame.unused_data, None
        n = min(len(buffer), len(self._output))
        buffer[:n] = self._output[:n]
        self._output = self._output[n:]
        return n


@contextlib.contextmanager
def _reading(path: Path, compression: str | None):
    """Turn what reading `path` can raise into one `DataError` line naming it."""
    zstd_error: tuple[type[BaseException], ...] = ()
    if compression == "zstd":
        zstd_error = (_optional("zstd", path).ZstdError,)
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile, *zstd_error) as err:
        raise DataError("data.paths", f"{path}: corrupt or truncated {compression or 'compressed'} data "
                                      f"({_short(err)})") from None
    except OSError as err:
        raise DataError("data.paths", f"cannot read {path}: {err.strerror or _short(err)}") from None


def _optional(kind: str, path: Path):
    module, extra = EXTRAS[kind]
    try:
        if module == "pyarrow":
            import pyarrow.parquet

            return pyarrow
        return __import__(module)
    except ImportError:
        raise DataError("data.paths", f"{path}: reading it needs {module}, not installed here: "
                                      f"{install_hint(extra)}") from None


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__
