"""`prepare`: settings -> corpus stream -> split -> tokenizer -> token files, cached by fingerprint.

Cache entry `<cache_root>/<fingerprint>/`:
    tokenizer.model | tokenizer.hf.json  the tokenizer: the trained sentencepiece model, or a copy of the given one
    tokenizer.json                       the trained model's size/sha256 record (reused on its own)
    train.bin, val.bin                   token ids, each document followed by EOS (np.memmap-able)
    progress.json, *.bin.partial         only while encoding: an interrupted preparation resumes from them
    manifest.json                        written last: sizes + sha256 of every file, and split statistics
A pre-tokenized corpus (`source: bin`) keeps only its manifest and `tokenizer.ids.json` there; its
token files stay where they are.

Memory does not grow with the corpus: documents stream through `scan` (fingerprint, split statistics,
the tokenizer's training sample) and then through `encode` (parallel workers, bounded chunks in
flight); token statistics are computed over the memory-mapped files in blocks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import fileio
from . import cache
from .corpus import Reading, empty_corpus, iter_documents, source_files
from .encode import Layout, chunk_layout, encode_stream
from .errors import DataError
from .progress import Progress
from .settings import DataSettings
from .split import RULE
from .stream import Scan, pieces, scan
from .tokenizer import (CHUNK_CHARS, SUBSAMPLE_SEED, TRAIN_CHARS, TRAINER_OPTIONS, Sample, Tokenizer, ids_only,
                        load_tokenizer, train_on_sentences)

log = logging.getLogger(__name__)

FORMAT = 2  # 2: the split in bytes (split.py); bump when the cache layout or the token stream changes
MANIFEST, TOKENIZER_RECORD, MODEL = "manifest.json", "tokenizer.json", "tokenizer.model"
MODEL_FILES = {"sentencepiece": MODEL, "huggingface": "tokenizer.hf.json", "none": "tokenizer.ids.json"}
BLOCK_TOKENS = 1 << 24  # tokens per block when counting over a memory-mapped split


@dataclass(repr=False)
class TokenData:
    """The prepared corpus: memory-mapped token splits, their tokenizer, and baselines to judge losses by."""

    train: np.ndarray  # 1-D token ids (uint16, or uint32 past 65536 pieces), memory-mapped
    val: np.ndarray
    tokenizer: Tokenizer
    val_bytes_per_token: float | None  # UTF-8 bytes of val text / val tokens (EOS included); None: unknown (ids given)
    unigram_val_loss: float  # nats/token of the add-one-smoothed train unigram on val: the floor to beat
    fingerprint: str  # hash of the split corpus and tokenizer settings; names the cache entry
    path: Path  # the cache entry folder
    stats: dict = field(default_factory=dict)  # documents, tokens and bytes per split
    cache_hit: bool = False
    timings: dict = field(default_factory=dict)  # this preparation: seconds per phase, how encoding was spread
    corpus: dict = field(default_factory=dict)  # what was read: the source, and how much of it (`corpus_facts`)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def bits_per_byte(self, loss: float) -> float | None:
        """Convert a val loss in nats/token into bits per UTF-8 byte (tokenizer-independent); None when
        the bytes behind the tokens are unknown (token ids given without `data.bytes_per_token`)."""
        if self.val_bytes_per_token is None:
            return None
        return loss / (self.val_bytes_per_token * math.log(2))

    def summary(self) -> dict:
        """JSON-able facts for results and reports."""
        return {"fingerprint": self.fingerprint, "vocab_size": self.vocab_size, "tokenizer": self.tokenizer.kind,
                "val_bytes_per_token": self.val_bytes_per_token, "unigram_val_loss": self.unigram_val_loss,
                "corpus": self.corpus, **self.stats}

    def describe(self) -> str:
        """What `python -m workbench data` prints: documents, bytes, tokens, bytes per token, the cache."""
        s = self.stats
        kind = {"sentencepiece": "sentencepiece", "huggingface": "tokenizers (tokenizer.json)",
                "none": "none (token ids given)"}[self.tokenizer.kind]
        per_token = (f"{self.val_bytes_per_token:.4f} (val split)" if self.val_bytes_per_token is not None else
                     "unknown: token ids were given (set data.bytes_per_token to report bits per byte)")
        val_share = _val_share(s)
        rows = [
            ("source", _source_text(self.corpus)),
            ("corpus", f"{self.fingerprint} ({'cached' if self.cache_hit else 'prepared now'})"),
            ("cache", str(self.path)),
            ("tokenizer", f"{kind}, vocabulary {self.vocab_size}"),
            ("documents", _pair(s.get("train_documents"), s.get("val_documents")) + _shared(s, self.corpus)),
            ("bytes", _pair(s.get("train_bytes"), s.get("val_bytes"))
             + (f" (val {val_share:.1%} of the bytes, data.val_fraction {self.corpus['val_fraction']})"
                if val_share is not None and "val_fraction" in self.corpus else "")),
            ("tokens", _pair(s.get("train_tokens"), s.get("val_tokens"))),
            ("bytes/token", per_token),
            ("unigram loss", f"{self.unigram_val_loss:.4f} nats/token on val (the floor a model must beat)"),
        ]
        note = cap_note(self.corpus)
        if note:
            rows.append(("cap", note))
        return "\n".join(f"  {k:<13}{v}" for k, v in rows)

    def __repr__(self) -> str:
        return (f"TokenData(train={len(self.train)} tokens, val={len(self.val)} tokens, vocab={self.vocab_size}, "
                f"fingerprint={self.fingerprint})")


def prepare(settings: DataSettings, base_dir: Path | None = None) -> TokenData:
    """Read, split, tokenize and cache the corpus `settings` describe; a valid cache entry is reused.

    Relative paths (data.paths, data.tokenizer, data.cache_dir) resolve against `base_dir` (default: the
    working folder).
    """
    start = time.perf_counter()
    base_dir = Path.cwd() if base_dir is None else Path(base_dir)
    settings.validate()
    if settings.source == "bin":
        return prepare_ids(settings, base_dir)
    given = load_tokenizer(_resolve(settings.tokenizer, base_dir)) if settings.tokenizer else None
    files = source_files(settings, base_dir)
    root = settings.cache_root(base_dir)
    on_disk = sum(_size(p) for _, p in files)
    reading = Progress("reading", min(on_disk, settings.max_bytes or on_disk))  # the cap, roughly, when it binds
    read = Reading(len(files))
    timings = {}
    try:
        result = scan(lambda: iter_documents(settings, base_dir, files, reading.advance, read), settings.val_fraction,
                      fingerprint_head(given.vocab_size if given else settings.vocab_size),
                      {"tokenizer": {"kind": given.kind, "sha256": given.sha256}} if given else {},
                      None if given else Sample, root, empty_corpus(settings))
    finally:
        reading.close()
    timings["read_s"] = time.perf_counter() - start
    corpus = corpus_facts(settings, read, result, on_disk)
    if corpus["capped"]:
        log.warning("%s", cap_note(corpus))
    entry = root / result.fingerprint
    with fileio.locked(entry.with_name(entry.name + ".lock")):
        manifest = fileio.read_json(entry / MANIFEST)
        hit = _valid(manifest, entry, result.fingerprint)
        if not hit:
            if manifest is not None:
                log.warning("data cache %s is incomplete or corrupt: rebuilding it", entry)
            layout = chunk_layout(settings.resolved_workers(), settings.memory_mb, result.total_bytes)
            manifest = _build(entry, result, settings, given, layout,
                              lambda: iter_documents(settings, base_dir, files), timings)
        data = _load(entry, manifest, hit)
    data.corpus = corpus
    data.timings = {**timings, "total_s": time.perf_counter() - start}
    log.info("data %s: %d train / %d val tokens, vocab %d, %.2f bytes/token (%s, %.1f s)", data.fingerprint,
             len(data.train), len(data.val), data.vocab_size, data.val_bytes_per_token, "cached" if hit else "built",
             time.perf_counter() - start)
    return data


def fingerprint_head(vocab_size: int) -> dict:
    """What shapes the tokens besides the text: hashed first into every text corpus's fingerprint."""
    return {"format": FORMAT, "vocab_size": vocab_size, "trainer": TRAINER_OPTIONS, "chunk_chars": CHUNK_CHARS,
            "train_chars": TRAIN_CHARS, "seed": SUBSAMPLE_SEED, "split": RULE}


def corpus_facts(settings: DataSettings, read: Reading, result: Scan, on_disk: int) -> dict:
    """What results.json and the report say about the text read: where from, how much, whether capped."""
    source = ({"source": "stdlib", "python": f"{sys.version_info.major}.{sys.version_info.minor}"}
              if settings.source == "stdlib" else {"source": settings.source, "paths": list(settings.paths)})
    return {**source, "files": read.files, "files_read": read.files_opened, "documents_read": result.documents,
            "bytes_read": result.total_bytes, "bytes_on_disk": on_disk, "max_bytes": settings.max_bytes,
            "capped": read.capped, "val_fraction": settings.val_fraction}


def cap_note(corpus: dict) -> str | None:
    """One sentence when `data.max_bytes` stopped the reading early (None otherwise)."""
    if not corpus.get("capped"):
        return None
    files, opened, docs = corpus.get("files"), corpus.get("files_read"), corpus.get("documents_read")
    text, disk = corpus.get("bytes_read", 0) / 1e6, corpus.get("bytes_on_disk", 0) / 1e6
    where = (f"it read {opened:,} of {files:,} files ({_count(docs, 'document')}, {text:.2f} MB of text; {disk:.2f} "
             "MB on disk)" if opened < files else
             f"it stopped after {_count(docs, 'document')} ({text:.2f} MB of text) in the last of its "
             f"{_count(files, 'file')} ({disk:.2f} MB on disk)")
    return (f"data.max_bytes={corpus.get('max_bytes'):,} capped the corpus: {where}; the rest is not used (raise "
            "data.max_bytes, or set it to null to read everything)")


def vocab_size_of(settings: DataSettings, base_dir: Path | None = None) -> int:
    """The model's vocabulary size without preparing: the given tokenizer's, else `data.vocab_size`."""
    if settings.tokenizer:
        return load_tokenizer(_resolve(settings.tokenizer, Path.cwd() if base_dir is None else Path(base_dir))).vocab_size
    return settings.vocab_size


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def unigram_loss(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats/token) on `val` of train token frequencies, add-one smoothed over the vocab."""
    counts = token_counts(train, vocab_size).astype(np.float64) + 1.0
    log_p = np.log(counts) - np.log(counts.sum())
    return float(-(token_counts(val, vocab_size) * log_p).sum() / len(val))


def token_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each id occurs, counted block by block (a memory-mapped split is never copied whole)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for i in range(0, len(tokens), BLOCK_TOKENS):
        block = np.bincount(np.asarray(tokens[i:i + BLOCK_TOKENS]), minlength=vocab_size)
        if len(block) > vocab_size:
            raise DataError("data.vocab_size", f"{vocab_size} is too small: the tokens hold id {len(block) - 1}")
        counts += block
    return counts


def check_sizes(data: TokenData, batch_size: int, seq_len: int) -> None:
    """Fail with a `DataError` before training when a split cannot hold one (seq_len + 1)-token window."""
    for key, value in (("train.batch_size", batch_size), ("train.seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(key, f"{value!r} must be an integer >= 1")
    for split, tokens in (("train", data.train), ("val", data.val)):
        if len(tokens) < seq_len + 1:
            raise DataError("train.seq_len", f"{seq_len} needs at least {seq_len + 1} tokens per split, but the "
                            f"{split} split has {len(tokens)} (lower train.seq_len or give more text)")
    windows = (len(data.val) - 1) // seq_len
    if windows < batch_size:
        log.warning("the val split holds %d windows of %d tokens, fewer than train.batch_size=%d: "
                    "validation is noisy", windows, seq_len, batch_size)


def _build(entry: Path, result: Scan, settings: DataSettings, given: Tokenizer | None, layout: Layout,
           documents, timings: dict) -> dict:
    started = time.perf_counter()
    entry.mkdir(parents=True, exist_ok=True)
    tokenizer, model_file = _tokenizer(entry, result, settings.vocab_size, given)
    result.sample = None  # the training sentences: free them before encoding
    trained = time.perf_counter()
    dtype = token_dtype(tokenizer.vocab_size)
    identity = {"fingerprint": result.fingerprint, "tokenizer": tokenizer.sha256, "dtype": dtype.name}
    progress = Progress("encoding", result.total_bytes, result.stats["train_documents"] + result.stats["val_documents"])
    try:
        encode_stream(entry, pieces(documents(), result.plan), tokenizer, dtype, layout, identity, progress)
    finally:
        progress.close()
    train_tokens = np.memmap(entry / "train.bin", dtype=dtype, mode="r")
    val_tokens = np.memmap(entry / "val.bin", dtype=dtype, mode="r")
    stats = {**result.stats, "train_tokens": int(len(train_tokens)), "val_tokens": int(len(val_tokens))}
    manifest = {
        "format": FORMAT, "fingerprint": result.fingerprint, "vocab_size": tokenizer.vocab_size, "dtype": dtype.name,
        "tokenizer": {"kind": tokenizer.kind, "file": model_file, "given": settings.tokenizer},
        "files": {name: cache.file_record(entry / name) for name in (model_file, "train.bin", "val.bin")},
        "stats": stats, "val_bytes_per_token": stats["val_bytes"] / len(val_tokens),
        "unigram_val_loss": unigram_loss(train_tokens, val_tokens, tokenizer.vocab_size),
    }
    del train_tokens, val_tokens  # close the maps before the manifest commits the entry
    fileio.write_json(entry / MANIFEST, manifest)
    encoding = time.perf_counter() - trained
    timings.update(tokenizer_s=trained - started, encode_s=encoding, parallel=layout.parallel, workers=layout.workers)
    log.info("data %s: tokenizer %.1f s, encoding %.1f s (%.2f MB/s, %s)", result.fingerprint, trained - started,
             encoding, result.total_bytes / 1e6 / max(encoding, 1e-9),
             f"{layout.workers} worker processes" if layout.parallel else "in this process")
    return manifest


def _tokenizer(entry: Path, result: Scan, vocab_size: int, given: Tokenizer | None) -> tuple[Tokenizer, str]:
    """The given tokenizer copied into the entry; or the entry's trained one if its record verifies (e.g.
    only a token file was corrupt), else a newly trained one."""
    if given is not None:
        name = MODEL_FILES[given.kind]
        given.save(entry / name)
        return Tokenizer(entry / name), name
    record = fileio.read_json(entry / TOKENIZER_RECORD)
    if not (record and record.get("fingerprint") == result.fingerprint and cache.matches(entry, record.get("files"))):
        fileio.write_bytes(entry / MODEL, train_on_sentences(result.sample.sentences(), vocab_size))
        record = {"fingerprint": result.fingerprint, "files": {MODEL: cache.file_record(entry / MODEL)}}
        fileio.write_json(entry / TOKENIZER_RECORD, record)
    return Tokenizer(entry / MODEL), MODEL


def _valid(manifest: dict | None, entry: Path, fp: str) -> bool:
    if not manifest or manifest.get("format") != FORMAT or manifest.get("fingerprint") != fp:
        return False
    try:
        itemsize = np.dtype(manifest["dtype"]).itemsize
        files, stats = manifest["files"], manifest["stats"]
        sizes_agree = all(files[f"{s}.bin"]["bytes"] == stats[f"{s}_tokens"] * itemsize for s in ("train", "val"))
    except (KeyError, TypeError):
        return False
    return sizes_agree and cache.matches(entry, files)


def _load(entry: Path, manifest: dict, hit: bool) -> TokenData:
    dtype = np.dtype(manifest["dtype"])
    model_file = manifest.get("tokenizer", {}).get("file", MODEL)  # entries of earlier versions: the trained model
    return TokenData(
        train=np.memmap(entry / "train.bin", dtype=dtype, mode="r"),
        val=np.memmap(entry / "val.bin", dtype=dtype, mode="r"),
        tokenizer=Tokenizer(entry / model_file),
        val_bytes_per_token=manifest["val_bytes_per_token"],
        unigram_val_loss=manifest["unigram_val_loss"],
        fingerprint=manifest["fingerprint"],
        path=entry,
        stats=dict(manifest["stats"]),
        cache_hit=hit,
    )


# --- pre-tokenized ids (nanoGPT's train.bin / val.bin) -------------------------------------------

def prepare_ids(settings: DataSettings, base_dir: Path) -> TokenData:
    """Token ids already written as raw arrays: memory-mapped where they are. The cache entry keeps their
    statistics (checked once: every id below `vocab_size`) and the ids-only tokenizer record."""
    dtype = np.dtype(settings.token_dtype)
    paths = [_ids_file(p, base_dir, dtype) for p in settings.paths]
    records = [cache.file_record(p) for p in paths]
    head = {"format": FORMAT, "source": "bin", "dtype": dtype.name, "vocab_size": settings.vocab_size,
            "files": [r["sha256"] for r in records]}
    fp = hashlib.sha256(json.dumps(head, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    entry = settings.cache_root(base_dir) / fp
    model_file = MODEL_FILES["none"]
    with fileio.locked(entry.with_name(entry.name + ".lock")):
        manifest = fileio.read_json(entry / MANIFEST)
        hit = bool(manifest and manifest.get("fingerprint") == fp and cache.matches(entry, manifest.get("files")))
        train, val = (np.memmap(p, dtype=dtype, mode="r") for p in paths)
        if not hit:
            for path, tokens in zip(paths, (train, val)):
                _check_ids(path, tokens, settings.vocab_size)
            fileio.write_bytes(entry / model_file, ids_only(settings.vocab_size))
            manifest = {"format": FORMAT, "fingerprint": fp, "source": "bin", "paths": [str(p) for p in paths],
                        "files": {model_file: cache.file_record(entry / model_file)},
                        "stats": {"train_tokens": int(len(train)), "val_tokens": int(len(val))},
                        "unigram_val_loss": unigram_loss(train, val, settings.vocab_size)}
            fileio.write_json(entry / MANIFEST, manifest)
    if settings.bytes_per_token is None:
        log.info("data %s: token ids given without data.bytes_per_token: bits per byte is not reported", fp)
    return TokenData(train=train, val=val, tokenizer=Tokenizer(entry / model_file),
                     val_bytes_per_token=settings.bytes_per_token, unigram_val_loss=manifest["unigram_val_loss"],
                     fingerprint=fp, path=entry, stats=dict(manifest["stats"]), cache_hit=hit,
                     corpus={"source": "bin", "paths": list(settings.paths), "capped": False})


def _ids_file(path: str, base_dir: Path, dtype: np.dtype) -> Path:
    full = _resolve(path, base_dir)
    if not full.is_file():
        raise DataError("data.paths", f"{path!r} does not exist (looked for {full})")
    size = full.stat().st_size
    if size % dtype.itemsize or size < 2 * dtype.itemsize:
        raise DataError("data.paths", f"{full}: {size} bytes is not a whole number (>= 2) of {dtype.name} token ids "
                                      f"(see data.token_dtype)")
    return full


def _check_ids(path: Path, tokens: np.ndarray, vocab_size: int) -> None:
    top = max(int(np.asarray(tokens[i:i + BLOCK_TOKENS]).max()) for i in range(0, len(tokens), BLOCK_TOKENS))
    if top >= vocab_size:
        raise DataError("data.vocab_size", f"{vocab_size} is too small for {path}: it holds token id {top} (set it to "
                                           f"at least {top + 1}, or check data.token_dtype)")


def _resolve(path: str, base_dir: Path) -> Path:
    full = Path(path).expanduser()
    return full if full.is_absolute() else base_dir / full


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _source_text(corpus: dict) -> str:
    if corpus.get("source") == "stdlib":
        return f"the embedded corpus: this Python's standard library {corpus.get('python')}"
    paths = corpus.get("paths") or []
    return f"{', '.join(paths)} ({corpus['files']:,} files)" if "files" in corpus else ", ".join(paths) or "unknown"


def _shared(stats: dict, corpus: dict) -> str:
    """The documents split between train and val, as the rule does with one larger than a unit."""
    read = corpus.get("documents_read")
    runs = (stats.get("train_documents") or 0) + (stats.get("val_documents") or 0)
    return f" ({runs - read} cut between the two)" if isinstance(read, int) and runs > read else ""


def _val_share(stats: dict) -> float | None:
    train, val = stats.get("train_bytes"), stats.get("val_bytes")
    return val / (train + val) if isinstance(train, int) and isinstance(val, int) and train + val else None


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _pair(train, val) -> str:
    if train is None or val is None:
        return "unknown"
    return f"train {train:,}, val {val:,}"
