"""`prepare`: settings -> corpus -> split -> tokenizer -> token arrays, cached by fingerprint.

Cache entry `<cache_root>/<fingerprint>/`:
    tokenizer.model, tokenizer.json   the sentencepiece model and its size/sha256 (reused on its own)
    train.bin, val.bin                token ids, each document followed by EOS (np.memmap-able)
    manifest.json                     written last: sizes + sha256 of every file, and split statistics
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from .. import fileio
from . import cache
from .corpus import Document, load_corpus, split_documents
from .errors import DataError
from .settings import DataSettings
from .tokenizer import CHUNK_CHARS, SUBSAMPLE_SEED, TRAIN_CHARS, TRAINER_OPTIONS, Tokenizer, train_tokenizer

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the cache layout or the token stream changes
ENCODE_BATCH = 256  # documents per sentencepiece call: fast, and bounds the Python-list memory
MANIFEST, TOKENIZER_RECORD, MODEL = "manifest.json", "tokenizer.json", "tokenizer.model"


@dataclass(repr=False)
class TokenData:
    """The prepared corpus: memory-mapped token splits, their tokenizer, and baselines to judge losses by."""

    train: np.ndarray  # 1-D token ids (uint16, or uint32 past 65536 pieces), memory-mapped
    val: np.ndarray
    tokenizer: Tokenizer
    val_bytes_per_token: float  # UTF-8 bytes of val text / val tokens (EOS included): see bits_per_byte
    unigram_val_loss: float  # nats/token of the add-one-smoothed train unigram on val: the floor to beat
    fingerprint: str  # hash of the split corpus and tokenizer settings; names the cache entry
    path: Path  # the cache entry folder
    stats: dict = field(default_factory=dict)  # documents, tokens and bytes per split
    cache_hit: bool = False

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def bits_per_byte(self, loss: float) -> float:
        """Convert a val loss in nats/token into bits per UTF-8 byte (tokenizer-independent)."""
        return loss / (self.val_bytes_per_token * math.log(2))

    def summary(self) -> dict:
        """JSON-able facts for results and reports."""
        return {"fingerprint": self.fingerprint, "vocab_size": self.vocab_size,
                "val_bytes_per_token": self.val_bytes_per_token, "unigram_val_loss": self.unigram_val_loss,
                **self.stats}

    def __repr__(self) -> str:
        return (f"TokenData(train={len(self.train)} tokens, val={len(self.val)} tokens, vocab={self.vocab_size}, "
                f"fingerprint={self.fingerprint})")


def prepare(settings: DataSettings, base_dir: Path | None = None) -> TokenData:
    """Load, split, tokenize and cache the corpus `settings` describe; a valid cache entry is reused.

    Relative paths (data.paths, data.cache_dir) resolve against `base_dir` (default: the working folder).
    """
    start = time.perf_counter()
    base_dir = Path.cwd() if base_dir is None else Path(base_dir)
    settings.validate()
    train_docs, val_docs = split_documents(load_corpus(settings, base_dir), settings.val_fraction)
    fp = fingerprint(train_docs, val_docs, settings.vocab_size)
    entry = settings.cache_root(base_dir) / fp
    with fileio.locked(entry.with_name(entry.name + ".lock")):
        manifest = fileio.read_json(entry / MANIFEST)
        hit = _valid(manifest, entry, fp)
        if not hit:
            if manifest is not None:
                log.warning("data cache %s is incomplete or corrupt: rebuilding it", entry)
            manifest = _build(entry, fp, train_docs, val_docs, settings.vocab_size)
        data = _load(entry, manifest, hit)
    log.info("data %s: %d train / %d val tokens, vocab %d, %.2f bytes/token (%s, %.1f s)", fp, len(data.train),
             len(data.val), data.vocab_size, data.val_bytes_per_token, "cached" if hit else "built",
             time.perf_counter() - start)
    return data


def fingerprint(train: list[Document], val: list[Document], vocab_size: int) -> str:
    """sha256 (16 hex) of the split documents (names and text) and everything that shapes the tokens."""
    digest = hashlib.sha256()
    head = {"format": FORMAT, "vocab_size": vocab_size, "trainer": TRAINER_OPTIONS, "chunk_chars": CHUNK_CHARS,
            "train_chars": TRAIN_CHARS, "seed": SUBSAMPLE_SEED}
    digest.update(json.dumps(head, sort_keys=True).encode("utf-8"))
    for split, docs in (("train", train), ("val", val)):
        for doc in docs:
            text = doc.text.encode("utf-8")
            digest.update(f"\0{split}\0{doc.name}\0{len(text)}\0".encode("utf-8"))
            digest.update(text)
    return digest.hexdigest()[:16]


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def unigram_loss(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats/token) on `val` of train token frequencies, add-one smoothed over the vocab."""
    counts = np.bincount(np.asarray(train), minlength=vocab_size).astype(np.float64) + 1.0
    log_p = np.log(counts) - np.log(counts.sum())
    val_counts = np.bincount(np.asarray(val), minlength=vocab_size)
    return float(-(val_counts * log_p).sum() / len(val))


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


def _build(entry: Path, fp: str, train: list[Document], val: list[Document], vocab_size: int) -> dict:
    started = time.perf_counter()
    tokenizer = _tokenizer(entry, fp, train, vocab_size)
    trained = time.perf_counter()
    dtype = token_dtype(tokenizer.vocab_size)
    for split, docs in (("train", train), ("val", val)):
        fileio.atomic_write(entry / f"{split}.bin", functools.partial(_write_tokens, tokenizer=tokenizer, docs=docs,
                                                                     dtype=dtype))
    train_tokens = np.memmap(entry / "train.bin", dtype=dtype, mode="r")
    val_tokens = np.memmap(entry / "val.bin", dtype=dtype, mode="r")
    val_bytes = sum(len(d.text.encode("utf-8")) for d in val)
    stats = {"train_documents": len(train), "val_documents": len(val), "train_tokens": int(len(train_tokens)),
             "val_tokens": int(len(val_tokens)), "train_bytes": sum(len(d.text.encode("utf-8")) for d in train),
             "val_bytes": val_bytes}
    manifest = {
        "format": FORMAT, "fingerprint": fp, "vocab_size": tokenizer.vocab_size, "dtype": dtype.name,
        "files": {name: cache.file_record(entry / name) for name in (MODEL, "train.bin", "val.bin")},
        "stats": stats, "val_bytes_per_token": val_bytes / len(val_tokens),
        "unigram_val_loss": unigram_loss(train_tokens, val_tokens, tokenizer.vocab_size),
    }
    del train_tokens, val_tokens  # close the maps before the manifest commits the entry
    fileio.write_json(entry / MANIFEST, manifest)
    log.info("data %s: tokenizer %.1f s, encoding %.1f s", fp, trained - started, time.perf_counter() - trained)
    return manifest


def _tokenizer(entry: Path, fp: str, train: list[Document], vocab_size: int) -> Tokenizer:
    """The entry's tokenizer if its record verifies (e.g. only a token file was corrupt), else a new one."""
    record = fileio.read_json(entry / TOKENIZER_RECORD)
    if not (record and record.get("fingerprint") == fp and cache.matches(entry, record.get("files"))):
        fileio.write_bytes(entry / MODEL, train_tokenizer([d.text for d in train], vocab_size))
        record = {"fingerprint": fp, "files": {MODEL: cache.file_record(entry / MODEL)}}
        fileio.write_json(entry / TOKENIZER_RECORD, record)
    return Tokenizer(entry / MODEL)


def _write_tokens(f: IO[bytes], tokenizer: Tokenizer, docs: list[Document], dtype: np.dtype) -> None:
    """Stream each document's ids followed by EOS into `f`, ENCODE_BATCH documents at a time."""
    eos = [tokenizer.eos_id]
    for i in range(0, len(docs), ENCODE_BATCH):
        batch = tokenizer.encode_batch([d.text for d in docs[i:i + ENCODE_BATCH]])
        f.write(np.concatenate([np.asarray(ids + eos, dtype=dtype) for ids in batch]).tobytes())


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
    return TokenData(
        train=np.memmap(entry / "train.bin", dtype=dtype, mode="r"),
        val=np.memmap(entry / "val.bin", dtype=dtype, mode="r"),
        tokenizer=Tokenizer(entry / MODEL),
        val_bytes_per_token=manifest["val_bytes_per_token"],
        unigram_val_loss=manifest["unigram_val_loss"],
        fingerprint=manifest["fingerprint"],
        path=entry,
        stats=dict(manifest["stats"]),
        cache_hit=hit,
    )
