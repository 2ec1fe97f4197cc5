"""Data layer: corpus loading and split, tokenizer, cache integrity, batch purity, baselines."""

from __future__ import annotations

import bisect
import colorsys
import fnmatch
import glob
import heapq
import inspect
import math
import pickle
import shlex
import shutil
import string
import textwrap
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data import (
    DataError,
    DataSettings,
    Document,
    batch_fingerprint,
    batch_offsets,
    check_sizes,
    load_corpus,
    prepare,
    split_documents,
    stdlib_files,
    stdlib_root,
    train_batch,
    val_batches,
    val_offsets,
)
from workbench.data import pipeline

VOCAB = 512  # fits the ~90 KB test corpus (it allows 376..~5000)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """Eight real Python modules (~90 KB) as text files: small, but enough for a 512-piece BPE."""
    root = tmp_path_factory.mktemp("corpus")
    for module in (textwrap, string, shlex, fnmatch, glob, bisect, heapq, colorsys):
        (root / f"{module.__name__}.py").write_text(inspect.getsource(module), encoding="utf-8")
    return root


def files_settings(cache: Path, **overrides) -> DataSettings:
    return DataSettings(**{"source": "files", "paths": ["*.py"], "vocab_size": VOCAB, "cache_dir": str(cache),
                           **overrides})


@pytest.fixture(scope="module")
def data(corpus_dir, tmp_path_factory):
    return prepare(files_settings(tmp_path_factory.mktemp("cache")), corpus_dir)


# --- corpus and split ---------------------------------------------------------------------------

def test_split_is_deterministic_disjoint_and_complete():
    docs = [Document(f"pkg/mod{i}.py", f"x = {i}\n") for i in range(200)]
    train, val = split_documents(docs, 0.1)
    assert split_documents(docs, 0.1) == (train, val)
    names_train, names_val = {d.name for d in train}, {d.name for d in val}
    assert names_train.isdisjoint(names_val) and names_train | names_val == {d.name for d in docs}
    assert 10 <= len(val) <= 30  # 10% of the bytes of 200 documents of (nearly) one size


def test_split_never_leaves_a_split_empty():
    docs = [Document("a.txt", "alpha\n"), Document("b.txt", "beta\n")]
    for fraction in (1e-9, 1 - 1e-9):
        train, val = split_documents(docs, fraction)
        assert len(train) == 1 and len(val) == 1


def test_single_document_splits_its_text_at_a_line():
    text = "".join(f"line {i}\n" for i in range(100))
    train, val = split_documents([Document("one.txt", text)], 0.2)
    assert train[0].text + val[0].text == text
    assert val[0].text.startswith("line ") and 0.15 < len(val[0].text) / len(text) < 0.25


def test_stdlib_corpus_sorted_capped_and_without_tests():
    files = stdlib_files()
    assert files == sorted(files) and len(files) > 100
    assert not any(part in {"test", "tests", "idle_test", "site-packages"} for f in files for part in f.split("/"))
    docs = load_corpus(DataSettings(max_bytes=60_000), Path.cwd())
    names = [d.name for d in docs]
    non_blank = [f for f in files if (stdlib_root() / f).read_text(errors="replace").strip()]
    assert names == non_blank[:len(names)]
    sizes = [len(d.text.encode("utf-8")) for d in docs]
    assert sum(sizes) <= 60_000
    assert sizes[:-1] == [(stdlib_root() / n).stat().st_size for n in names[:-1]]  # whole files, the last one cut


def test_files_source_errors_name_data_paths(tmp_path):
    with pytest.raises(DataError, match="missing.txt") as err:
        load_corpus(DataSettings(source="files", paths=["missing.txt"]), tmp_path)
    assert err.value.key == "data.paths"
    with pytest.raises(DataError, match=r"\*\.md") as err:
        load_corpus(DataSettings(source="files", paths=["*.md"]), tmp_path)
    assert err.value.key == "data.paths"
    (tmp_path / "blank.txt").write_text("  \n")
    with pytest.raises(DataError, match="empty corpus") as err:
        load_corpus(DataSettings(source="files", paths=["blank.txt"]), tmp_path)
    assert err.value.key == "data.paths"


def test_settings_validation_names_the_key():
    with pytest.raises(DataError) as err:
        DataSettings.from_mapping({"vocab": 100})
    assert err.value.key == "data.vocab" and "vocab_size" in str(err.value)
    with pytest.raises(DataError) as err:
        DataSettings.from_mapping({"val_fraction": 1.0})
    assert err.value.key == "data.val_fraction"
    with pytest.raises(DataError) as err:
        DataSettings.from_mapping({"source": "web"})
    assert err.value.key == "data.source" and "stdlib, files" in str(err.value)
    assert "\n" not in str(err.value)


# --- tokenizer ----------------------------------------------------------------------------------

def test_tokenizer_round_trips_any_text(data):
    tok = data.tokenizer
    for text in ["def f(x):\n\treturn  x  \n\n", "  leading and trailing  ", "héllo wörld 🦜 ∑ 中文 \x00 ok"]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert 0 not in ids  # byte_fallback: nothing maps to <unk> (id 0)
    assert tok.vocab_size == VOCAB
    assert pickle.loads(pickle.dumps(tok)).encode("héllo 🦜") == tok.encode("héllo 🦜")


def test_token_stream_is_documents_joined_by_eos(data, corpus_dir):
    docs = load_corpus(files_settings(Path("unused")), corpus_dir)
    train, val = split_documents(docs, 0.05)
    eos = data.tokenizer.eos_id
    assert int(np.sum(data.val == eos)) == len(val) and data.val[-1] == eos
    assert data.tokenizer.decode(data.train) == "".join(d.text for d in train)  # EOS decodes to ""
    assert data.val_bytes_per_token == pytest.approx(sum(len(d.text.encode()) for d in val) / len(data.val))


def test_vocab_size_outside_what_the_corpus_allows(corpus_dir, tmp_path):
    for vocab, bound in ((100_000, "at most"), (300, "at least")):
        with pytest.raises(DataError, match=bound) as err:
            prepare(files_settings(tmp_path, vocab_size=vocab), corpus_dir)
        assert err.value.key == "data.vocab_size" and "\n" not in str(err.value)


# --- cache --------------------------------------------------------------------------------------

def _no_training(*args, **kwargs):
    raise AssertionError("the tokenizer was retrained")


def test_cache_is_reused_without_retraining(corpus_dir, tmp_path, monkeypatch):
    first = prepare(files_settings(tmp_path), corpus_dir)
    assert not first.cache_hit
    monkeypatch.setattr(pipeline, "train_on_sentences", _no_training)
    second = prepare(files_settings(tmp_path), corpus_dir)
    assert second.cache_hit and second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(second.train, first.train)


def test_truncated_token_file_is_rebuilt_without_retraining(corpus_dir, tmp_path, monkeypatch):
    clean = prepare(files_settings(tmp_path), corpus_dir)
    expected = np.array(clean.train)
    path = clean.path / "train.bin"
    path.write_bytes(path.read_bytes()[:-10])
    monkeypatch.setattr(pipeline, "train_on_sentences", _no_training)  # the tokenizer itself is intact
    rebuilt = prepare(files_settings(tmp_path), corpus_dir)
    assert not rebuilt.cache_hit
    np.testing.assert_array_equal(rebuilt.train, expected)
    assert prepare(files_settings(tmp_path), corpus_dir).cache_hit


def test_corrupt_tokenizer_is_retrained(corpus_dir, tmp_path):
    clean = prepare(files_settings(tmp_path), corpus_dir)
    model = clean.path / "tokenizer.model"
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size, different content
    model.write_bytes(bytes(blob))
    rebuilt = prepare(files_settings(tmp_path), corpus_dir)
    assert not rebuilt.cache_hit and rebuilt.tokenizer.decode(rebuilt.tokenizer.encode("ok ∑")) == "ok ∑"
    np.testing.assert_array_equal(rebuilt.val, clean.val)


def test_settings_that_change_tokens_change_the_fingerprint(corpus_dir, tmp_path, data):
    assert prepare(files_settings(tmp_path, vocab_size=600), corpus_dir).fingerprint != data.fingerprint
    assert prepare(files_settings(tmp_path, max_bytes=40_000), corpus_dir).fingerprint != data.fingerprint
    assert prepare(files_settings(tmp_path / "elsewhere"), corpus_dir).fingerprint == data.fingerprint


def test_concurrent_prepares_agree(corpus_dir, tmp_path):
    results, errors = [], []

    def work():
        try:
            results.append(prepare(files_settings(tmp_path), corpus_dir))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(not r.cache_hit for r in results) == 1  # one builds under the lock, the others reuse it
    for r in results[1:]:
        np.testing.assert_array_equal(r.train, results[0].train)
    assert not list(results[0].path.glob("*.tmp"))


# --- baselines and size checks ------------------------------------------------------------------

def test_unigram_val_loss_matches_direct_computation(data):
    counts = Counter(data.train.tolist())
    total = len(data.train) + data.vocab_size  # add-one smoothing over the whole vocabulary
    expected = -sum(math.log((counts.get(t, 0) + 1) / total) for t in data.val.tolist()) / len(data.val)
    assert data.unigram_val_loss == pytest.approx(expected, rel=1e-12)
    assert data.unigram_val_loss < math.log(data.vocab_size)


def test_check_sizes_names_seq_len(data):
    check_sizes(data, batch_size=4, seq_len=64)
    with pytest.raises(DataError, match=f"val split has {len(data.val)}") as err:
        check_sizes(data, batch_size=4, seq_len=len(data.val))
    assert err.value.key == "train.seq_len"


# --- batches ------------------------------------------------------------------------------------

def test_train_batch_is_a_pure_function_of_seed_and_step(data):
    x, y = train_batch(data.train, step=7, seed=3, batch_size=4, seq_len=32)
    assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64
    x2, y2 = train_batch(data.train, step=7, seed=3, batch_size=4, seq_len=32)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, train_batch(data.train, step=8, seed=3, batch_size=4, seq_len=32)[0])
    assert not torch.equal(x, train_batch(data.train, step=7, seed=4, batch_size=4, seq_len=32)[0])
    assert torch.equal(x[:, 1:], y[:, :-1])
    offsets = batch_offsets(len(data.train), 7, 3, 4, 32)
    for row, start in zip(x, offsets.tolist()):
        np.testing.assert_array_equal(row.numpy(), data.train[start:start + 32])


def test_rank_slices_partition_the_global_batch(data):
    full_x, full_y = train_batch(data.train, step=2, seed=0, batch_size=6, seq_len=16)
    parts = [train_batch(data.train, step=2, seed=0, batch_size=2, seq_len=16, rank=r, world_size=3) for r in range(3)]
    assert torch.equal(torch.cat([p[0] for p in parts]), full_x)
    assert torch.equal(torch.cat([p[1] for p in parts]), full_y)


def test_val_batches_are_fixed_disjoint_and_spread(data):
    batches = val_batches(data.val, batch_size=4, seq_len=32, max_batches=5)
    again = val_batches(data.val, batch_size=4, seq_len=32, max_batches=5)
    assert len(batches) == 5 and all(x.shape == (4, 32) for x, _ in batches)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    starts = val_offsets(len(data.val), 4, 32, 5)
    assert np.all(np.diff(starts) >= 32)  # non-overlapping inputs
    assert starts[-1] > len(data.val) * 0.8  # spread to the end of the split, not just its head
    for x, y in batches:
        assert torch.equal(x[:, 1:], y[:, :-1])
    short = val_batches(data.val[:100], batch_size=8, seq_len=32, max_batches=5)  # only 3 windows fit
    assert len(short) == 1 and short[0][0].shape == (3, 32)


def test_batch_fingerprint_tracks_seed_and_content(data):
    fp = batch_fingerprint(data.train, seed=0, steps=50, batch_size=4, seq_len=32)
    assert fp == batch_fingerprint(data.train, seed=0, steps=50, batch_size=4, seq_len=32)
    assert fp != batch_fingerprint(data.train, seed=1, steps=50, batch_size=4, seq_len=32)
    assert fp != batch_fingerprint(data.train, seed=0, steps=51, batch_size=4, seq_len=32)
    changed = np.array(data.train)
    changed[-1] ^= 1
    assert fp != batch_fingerprint(changed, seed=0, steps=50, batch_size=4, seq_len=32)


def test_cache_entry_is_relocatable(data, corpus_dir, tmp_path, monkeypatch):
    """The manifest records content, not locations: a cache folder copied elsewhere is reused as is."""
    shutil.copytree(data.path, tmp_path / data.fingerprint)
    monkeypatch.setattr(pipeline, "train_on_sentences", _no_training)
    moved = prepare(files_settings(tmp_path), corpus_dir)
    assert moved.cache_hit and moved.path == tmp_path / data.fingerprint
