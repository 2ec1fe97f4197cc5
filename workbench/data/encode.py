"""Encoding the piece stream into the train/val token files: parallel, in input order, resumable.

The main process reads and splits the corpus (`stream.pieces`) and groups pieces into chunks of about
`chunk_chars` characters; worker processes (spawned: they import only this layer, not torch) encode
chunks and return their ids as bytes; the main process appends them to `train.bin.partial` and
`val.bin.partial` strictly in chunk order. Each piece is encoded on its own, so the files do not depend
on the chunk size or the number of workers. At most `2 * workers` chunks are in flight, which is what
bounds memory (`chunk_layout`); each worker adds its interpreter and one tokenizer call's working memory.

Every CHECKPOINT_SECONDS the partial files are fsynced and `progress.json` records how many pieces
they hold and their sizes; a run killed at any point resumes from there (files truncated to the
recorded sizes, recorded pieces skipped). The finished files are renamed into place at the end, and
the caller writes the manifest after that: a killed run never leaves an entry that looks complete.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .. import fileio
from .progress import Progress
from .stream import TRAIN, VAL, Piece
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)

ENCODE_CHARS = 1 << 18  # characters per tokenizer call inside a chunk: bounds the Python lists of ids
MIN_CHUNK = 16 << 10  # characters
CHAR_BYTES = 4  # memory per character of a chunk in flight: its text, pickled copies, ids and result bytes
PARALLEL_CHARS = 8_000_000  # below this, starting worker processes costs about what they save
# Not covered by memory_mb: each worker's interpreter (~35 MiB) and a tokenizer call's working memory
# (sentencepiece: ~45 bytes per character, so ~3 MiB for a split.UNIT_CHARS piece).
CHECKPOINT_SECONDS = 10.0
PROGRESS_FILE = "progress.json"
SPLITS = (TRAIN, VAL)

Chunk = list[tuple[bool, str, bool]]  # (is val, text, end of document) per piece

# The tokenizer of this process (a worker, or the main process encoding inline).
_tokenizer: Tokenizer | None = None
_dtype: np.dtype | None = None
_threads = 1


@dataclass(frozen=True)
class Layout:
    """How the stream is cut and spread: never changes the tokens, only speed and memory."""

    workers: int
    chunk_chars: int
    parallel: bool  # worker processes; False: encode in this process (one worker, or a small corpus)

    @property
    def in_flight(self) -> int:
        return 2 * self.workers


def chunk_layout(workers: int, memory_mb: int, total_chars: int) -> Layout:
    """Chunks sized so that the `2 * workers` in flight hold at most `memory_mb` of text and ids, and small
    enough that a mid-size corpus still spreads over every worker."""
    chunk = memory_mb * (1 << 20) // (2 * workers * CHAR_BYTES)
    chunk = max(MIN_CHUNK, min(chunk, total_chars // (4 * workers)))
    return Layout(workers, chunk, parallel=workers > 1 and total_chars >= PARALLEL_CHARS)


def partial_path(entry: Path, split: str) -> Path:
    return entry / f"{split}.bin.partial"


def encode_stream(entry: Path, stream: Iterable[Piece], tokenizer: Tokenizer, dtype: np.dtype, layout: Layout,
                  identity: dict, progress: Progress) -> None:
    """Write `entry`/train.bin and val.bin from `stream`, resuming the partial files of an interrupted run
    with the same `identity` (fingerprint, tokenizer, dtype)."""
    state = _resume_state(entry, identity)
    if state["pieces"]:
        log.info("data: resuming an interrupted preparation after %d pieces", state["pieces"])
    progress.resume(state["text_bytes"])
    files = {split: _open_partial(partial_path(entry, split), state[split]) for split in SPLITS}
    writer = _Writer(entry, files, state, identity, progress)
    try:
        pieces = iter(stream)
        for _ in range(state["pieces"]):
            next(pieces)
        chunks = _chunks(pieces, layout.chunk_chars)
        if layout.parallel:
            _run_pool(chunks, tokenizer, dtype, layout, writer)
        else:
            _set_tokenizer(tokenizer, dtype, layout.workers)
            for chunk, count in chunks:
                writer.write(encode_chunk(chunk), count)
        writer.sync()
    finally:
        for f in files.values():
            f.close()
    for split in SPLITS:
        os.replace(partial_path(entry, split), entry / f"{split}.bin")
    (entry / PROGRESS_FILE).unlink(missing_ok=True)


def encode_chunk(chunk: Chunk) -> tuple[bytes, bytes, int, int]:
    """(train ids, val ids, UTF-8 bytes encoded, documents ended) of one chunk, by this process's tokenizer."""
    out: tuple[list, list] = ([], [])
    text_bytes = docs = 0
    eos = _tokenizer.eos_id
    start = 0
    while start < len(chunk):
        end, chars = start + 1, len(chunk[start][1])
        while end < len(chunk) and chars + len(chunk[end][1]) <= ENCODE_CHARS:
            chars += len(chunk[end][1])
            end += 1
        batch = chunk[start:end]
        for (is_val, text, last), ids in zip(batch, _tokenizer.encode_batch([t for _, t, _ in batch], _threads)):
            if last:
                ids.append(eos)
                docs += 1
            out[is_val].append(np.asarray(ids, dtype=_dtype))
            text_bytes += len(text) if text.isascii() else len(text.encode("utf-8"))
        start = end
    train, val = (np.concatenate(parts).tobytes() if parts else b"" for parts in out)
    return train, val, text_bytes, docs


def _init_worker(blob: bytes, dtype: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: it stops the pool
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread per process, whatever the tokenizer
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    _set_tokenizer(Tokenizer.from_bytes(blob), np.dtype(dtype), 1)


def _set_tokenizer(tokenizer: Tokenizer, dtype: np.dtype, threads: int) -> None:
    global _tokenizer, _dtype, _threads
    _tokenizer, _dtype, _threads = tokenizer, dtype, threads


def _run_pool(chunks: Iterator[tuple[Chunk, int]], tokenizer: Tokenizer, dtype: np.dtype, layout: Layout,
              writer: _Writer) -> None:
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no torch, no inherited threads
    with context.Pool(layout.workers, initializer=_init_worker, initargs=(tokenizer.serialized(), dtype.str)) as pool:
        pending: deque = deque()
        for chunk, count in chunks:
            if len(pending) >= layout.in_flight:
                result, done = pending.popleft()
                writer.write(result.get(), done)
            pending.append((pool.apply_async(encode_chunk, (chunk,)), count))
            del chunk
        while pending:
            result, done = pending.popleft()
            writer.write(result.get(), done)


def _chunks(pieces: Iterator[Piece], limit: int) -> Iterator[tuple[Chunk, int]]:
    chunk: Chunk = []
    chars = 0
    for piece in pieces:
        chunk.append((piece.split == VAL, piece.text, piece.end))
        chars += len(piece.text)
        if chars >= limit:
            yield chunk, len(chunk)
            chunk, chars = [], 0
    if chunk:
        yield chunk, len(chunk)


class _Writer:
    """Appends results in order; checkpoints `progress.json` every CHECKPOINT_SECONDS."""

    def __init__(self, entry: Path, files: dict[str, IO[bytes]], state: dict, identity: dict, progress: Progress):
        self.entry, self.files, self.state, self.identity, self.progress = entry, files, state, identity, progress
        self.last = time.monotonic()

    def write(self, result: tuple[bytes, bytes, int, int], pieces: int) -> None:
        train, val, text_bytes, docs = result
        for split, data in ((TRAIN, train), (VAL, val)):
            self.files[split].write(data)
            self.state[split] += len(data)
        self.state["pieces"] += pieces
        self.state["text_bytes"] += text_bytes
        self.progress.advance(text_bytes, docs)
        if time.monotonic() - self.last >= CHECKPOINT_SECONDS:
            self.sync()

    def sync(self) -> None:
        """Make the partial files durable, then record what they hold."""
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
        fileio.write_json(self.entry / PROGRESS_FILE, {**self.identity, **self.state})
        self.last = time.monotonic()


def _resume_state(entry: Path, identity: dict) -> dict:
    """What the partial files of an interrupted run with this identity hold; zeros otherwise."""
    fresh = {"pieces": 0, "text_bytes": 0, TRAIN: 0, VAL: 0}
    recorded = fileio.read_json(entry / PROGRESS_FILE)
    if not recorded or any(recorded.get(k) != v for k, v in identity.items()):
        return fresh
    try:
        state = {k: int(recorded[k]) for k in fresh}
        if all(partial_path(entry, s).stat().st_size >= state[s] for s in SPLITS):
            return state
    except (KeyError, TypeError, ValueError, OSError):
        pass
    return fresh


def _open_partial(path: Path, size: int) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "r+b" if size and path.exists() else "w+b")
    f.truncate(size)
    f.seek(size)
    return f
