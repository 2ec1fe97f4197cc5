"""Streaming ingestion: the same tokens as the whole-corpus computation, whatever the number of worker
processes, the read block size or an interruption; bounded sampling; the progress display."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from workbench.data import DataSettings, formats, load_corpus, prepare, stdlib_files, stdlib_root
from workbench.data import encode, progress
from workbench.data.corpus import segment
from workbench.data.split import RULE
from workbench.data.stream import split_pieces
from workbench.data.tokenizer import CHUNK_CHARS, SUBSAMPLE_SEED, TRAIN_CHARS, TRAINER_OPTIONS, Sample, line_chunks
from workbench.data.tokenizer import _line_chunks_slow, train_tokenizer

REPO = Path(__file__).resolve().parent.parent


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_corpus(folder: Path, n_bytes: int) -> Path:
    """Real text (stdlib sources) as .txt files, plus one file longer than a segment (1 MiB characters)."""
    folder.mkdir(parents=True, exist_ok=True)
    root, total, big = stdlib_root(), 0, []
    for i, name in enumerate(stdlib_files(root)):
        text = (root / name).read_text(encoding="utf-8", errors="replace")
        if i % 3 == 0 and sum(map(len, big)) < 1_300_000:
            big.append(text)
        else:
            (folder / f"doc{i:04d}.txt").write_text(text, encoding="utf-8")
        total += len(text)
        if total >= n_bytes:
            break
    (folder / "long.txt").write_text("".join(big), encoding="utf-8")
    return folder


def settings(cache: Path, **overrides) -> DataSettings:
    return DataSettings(**{"source": "files", "paths": ["*.txt"], "vocab_size": 512, "cache_dir": str(cache),
                           "max_bytes": None, "memory_mb": 1, **overrides})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("ingest") / "corpus", 2_500_000)


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> dict:
    """One uninterrupted preparation in this process (workers=1): the files every other run must equal."""
    data = prepare(settings(tmp_path_factory.mktemp("reference"), workers=1), corpus)
    return {"fingerprint": data.fingerprint, "model": data.path / "tokenizer.model",
            **{name: sha(data.path / name) for name in ("train.bin", "val.bin", "tokenizer.model")}}


def reuse_tokenizer(reference: dict, cache: Path) -> Path:
    """A cache entry holding only the reference's trained tokenizer: the next prepare encodes, not trains."""
    entry = cache / reference["fingerprint"]
    entry.mkdir(parents=True)
    for name in ("tokenizer.model", "tokenizer.json"):
        (entry / name).write_bytes((reference["model"].parent / name).read_bytes())
    return entry


def assert_same_files(entry: Path, reference: dict) -> None:
    for name in ("train.bin", "val.bin", "tokenizer.model"):
        assert sha(entry / name) == reference[name], name
    assert not list(entry.glob("*.partial")) and not (entry / encode.PROGRESS_FILE).exists()


# --- the stream computes what the whole-corpus code computed ------------------------------------

def test_default_corpus_matches_the_whole_corpus_computation(tmp_path):
    """The embedded corpus: fingerprint, tokenizer and token files equal the in-memory definition (all
    documents loaded, split into pieces, tokenizer trained on the train pieces, each piece encoded, EOS
    after the last of each run)."""
    config = DataSettings(max_bytes=300_000, vocab_size=400, cache_dir=str(tmp_path))
    data = prepare(config, tmp_path)
    stream = split_pieces(load_corpus(config, tmp_path), config.val_fraction)
    head = {"format": 2, "vocab_size": 400, "trainer": TRAINER_OPTIONS, "chunk_chars": CHUNK_CHARS,
            "train_chars": TRAIN_CHARS, "seed": SUBSAMPLE_SEED, "split": RULE}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode("utf-8"))
    for split in ("train", "val"):
        for piece in stream:
            if piece.split == split:
                text = piece.text.encode("utf-8")
                digest.update(f"\0{split}\0{piece.name}\0{len(text)}\0".encode("utf-8") + text)
    assert data.fingerprint == digest.hexdigest()[:16]
    model = train_tokenizer([p.text for p in stream if p.split == "train"], 400)
    assert (data.path / "tokenizer.model").read_bytes() == model
    sp = spm.SentencePieceProcessor(model_proto=model)
    for tokens, split in ((data.train, "train"), (data.val, "val")):
        expected = np.concatenate([np.asarray(sp.encode(p.text) + [sp.eos_id()] * p.end, dtype=np.uint16)
                                   for p in stream if p.split == split])
        np.testing.assert_array_equal(np.asarray(tokens), expected)


def test_segments_end_at_line_ends_and_do_not_depend_on_blocks():
    rng = random.Random(1)
    text = "".join("".join(rng.choice("ab c\t(é") for _ in range(rng.randint(0, 300))) + "\n" for _ in range(2000))
    text += "x" * 2500  # one line longer than the limit, without a line end
    pieces = list(segment([text], 1000))
    assert "".join(pieces) == text and max(map(len, pieces)) <= 1000
    assert sum(not p.endswith("\n") for p in pieces) <= 3  # only the long last line is cut mid-line
    for size in (1, 999, 1000, 4096):
        assert list(segment([text[i:i + size] for i in range(0, len(text), size)], 1000)) == pieces
    assert list(segment(["short\n"], 1000)) == ["short\n"]


def test_fast_line_chunks_equal_splitlines_chunks():
    rng = random.Random(2)
    for ends in ("\n", "\n\r\x0c\u2028"):
        for _ in range(30):
            text = "".join("".join(rng.choice("ab ") for _ in range(rng.choice([0, 5, 60, 2500]))) + rng.choice(ends)
                           for _ in range(rng.randint(1, 40)))
            assert list(line_chunks(text, 100)) == list(_line_chunks_slow(text, 100))


def test_sample_keeps_all_that_fits_else_the_lowest_keys_in_order():
    sentences = [f"{i:05d}" * (1 + i % 7) for i in range(3000)]
    small = Sample(max_chars=10**9)
    for s in sentences:
        small.add(s)
    assert small.sentences() == sentences and not small.subsampled
    sample = Sample(max_chars=20_000)
    for s in sentences:
        sample.add(s)
    keys = [int.from_bytes(hashlib.blake2b(f"0:{i}".encode(), digest_size=8).digest(), "little") for i in range(3000)]
    kept, total = [], 0
    for i in sorted(range(3000), key=keys.__getitem__):  # the longest run of lowest keys that fits
        if total + len(sentences[i]) > 20_000:
            break
        kept.append(i)
        total += len(sentences[i])
    assert sample.subsampled and sample.sentences() == [sentences[i] for i in sorted(kept)]


def test_a_streamed_file_reads_like_the_whole_file(tmp_path, monkeypatch):
    """A file over BIG_DOC is read in blocks; whatever the cap, its text is what reading it whole gives."""
    rng = random.Random(3)
    text = "".join("".join(rng.choice("abcdé xyz()") for _ in range(rng.randint(0, 120))) + "\n" for _ in range(6000))
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    for cap in (None, 40_001, 150_000, 300_007):
        config = DataSettings(source="files", paths=["big.txt"], max_bytes=cap)
        whole = load_corpus(config, tmp_path)
        with monkeypatch.context() as patch:
            patch.setattr(formats, "BIG_DOC", 60_000)
            patch.setattr(formats, "BLOCK", 8192)
            assert load_corpus(config, tmp_path) == whole


# --- determinism: workers, interruption -------------------------------------------------------------

@pytest.fixture
def pool_for_small_corpora(monkeypatch):
    """Worker processes even for the few MB of these tests (normally from encode.PARALLEL_CHARS on)."""
    monkeypatch.setattr(encode, "PARALLEL_CHARS", 0)


def test_one_and_two_workers_write_identical_files(corpus, reference, tmp_path, caplog, pool_for_small_corpora):
    entry = reuse_tokenizer(reference, tmp_path)
    with caplog.at_level(logging.INFO, logger="workbench.data"):
        data = prepare(settings(tmp_path, workers=2), corpus)
    assert "2 worker processes" in caplog.text  # the pool ran, chunk after chunk
    assert data.path == entry and data.stats["train_documents"] > 50
    assert_same_files(entry, reference)


def test_a_failure_midway_resumes_to_identical_files(corpus, reference, tmp_path, monkeypatch):
    entry = reuse_tokenizer(reference, tmp_path)
    monkeypatch.setattr(encode, "CHECKPOINT_SECONDS", 0.0)
    real, calls = encode.encode_chunk, []

    def failing(chunk):
        calls.append(len(chunk))
        if len(calls) == 5:
            raise RuntimeError("simulated crash")
        return real(chunk)

    monkeypatch.setattr(encode, "encode_chunk", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare(settings(tmp_path, workers=1), corpus)
    assert not (entry / "manifest.json").exists() and not (entry / "train.bin").exists()
    assert json.loads((entry / encode.PROGRESS_FILE).read_text())["pieces"] > 0
    calls.clear()
    monkeypatch.setattr(encode, "encode_chunk", lambda chunk: calls.append(len(chunk)) or real(chunk))
    data = prepare(settings(tmp_path, workers=1), corpus)
    assert not data.cache_hit and sum(calls) < data.stats["train_documents"]  # resumed, not started over
    assert_same_files(entry, reference)


KILL_SCRIPT = """
import json, os, signal, sys
from workbench.data import DataSettings, encode, prepare
encode.CHECKPOINT_SECONDS, encode.PARALLEL_CHARS = 0.0, 0
syncs, sync = [], encode._Writer.sync
def sync_then_die(self):
    sync(self)
    syncs.append(1)
    if len(syncs) == 4:
        os.killpg(0, signal.SIGKILL)  # the main process and its workers, mid-write, as an OOM kill would
encode._Writer.sync = sync_then_die
prepare(DataSettings(**json.loads(sys.argv[1])), sys.argv[2])
"""


def test_a_killed_preparation_restarts_to_identical_files(corpus, reference, tmp_path):
    entry = reuse_tokenizer(reference, tmp_path)
    config = {"source": "files", "paths": ["*.txt"], "vocab_size": 512, "cache_dir": str(tmp_path), "max_bytes": None,
              "memory_mb": 1, "workers": 2}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(config), str(corpus)], env=env,
                          capture_output=True, text=True, timeout=120, start_new_session=True)
    assert proc.returncode == -9, proc.stderr
    assert not (entry / "manifest.json").exists() and (entry / encode.PROGRESS_FILE).exists()
    data = prepare(DataSettings(**config), corpus)
    assert not data.cache_hit
    assert_same_files(entry, reference)
    assert prepare(DataSettings(**config), corpus).cache_hit


def test_a_corpus_of_one_long_file_holds_out_its_tail(tmp_path, monkeypatch, pool_for_small_corpora):
    """One document over BIG_DOC: streamed in segments, the val split is its last segments, and the
    token files decode back to the text (sentencepiece is lossless here), with 1 or 2 workers."""
    monkeypatch.setattr(formats, "BIG_DOC", 200_000)
    monkeypatch.setattr(formats, "BLOCK", 65_536)
    rng = random.Random(4)
    words = ["def", "return", "self", "value", "x", "(", ")", ":", "=", "for", "in", "ü", "    "]
    text = "".join(" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + "\n" for _ in range(100_000))
    assert len(text) > 2 * (1 << 20)
    (tmp_path / "one.txt").write_text(text, encoding="utf-8")
    built = {}
    for workers in (1, 2):
        data = prepare(DataSettings(source="files", paths=["one.txt"], vocab_size=300, max_bytes=None, memory_mb=1,
                                    workers=workers, cache_dir=str(tmp_path / f"cache{workers}")), tmp_path)
        built[workers] = (sha(data.path / "train.bin"), sha(data.path / "val.bin"))
    tok = data.tokenizer
    train_text, val_text = tok.decode(data.train), tok.decode(data.val)
    assert train_text + val_text == text and text.endswith(val_text)
    assert 0.01 < len(val_text) / len(text) < 0.5 and int(np.sum(data.val == tok.eos_id)) == 1
    assert built[1] == built[2]


def test_settings_that_never_change_tokens_keep_the_fingerprint(corpus, reference, tmp_path, pool_for_small_corpora):
    entry = reuse_tokenizer(reference, tmp_path)
    data = prepare(settings(tmp_path, workers=2, memory_mb=64), corpus)
    assert data.fingerprint == reference["fingerprint"] and data.path == entry
    assert_same_files(entry, reference)


# --- progress -----------------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_a_bar_on_a_terminal_and_logs_lines_elsewhere(monkeypatch, caplog):
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0.0)
    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)
    screen = Terminal()
    bar = progress.Progress("encoding", total_bytes=4_000_000, total_docs=40, stream=screen)
    bar.advance(1_000_000, 10)
    bar.close()
    drawn = screen.getvalue()
    assert drawn.startswith("\r") and drawn.endswith("\n") and "25.0%" in drawn and "10/40 docs" in drawn
    assert "ETA" in drawn and "MB/s" in drawn
    with caplog.at_level(logging.INFO, logger="workbench.data"):
        plain = progress.Progress("reading", total_bytes=None, stream=io.StringIO())
        plain.advance(2_000_000, 3)
        plain.close()
    assert "reading:" in caplog.text and "2.0 MB" in caplog.text and "\r" not in caplog.text


def test_memory_setting_sizes_the_chunks():
    small, large = encode.chunk_layout(2, 1, 10**9), encode.chunk_layout(2, 1024, 10**9)
    assert small.chunk_chars == (1 << 20) // (small.in_flight * encode.CHAR_BYTES)
    assert large.in_flight * large.chunk_chars * encode.CHAR_BYTES <= 1024 << 20 and large.parallel
    assert encode.chunk_layout(2, 1024, 10**7).chunk_chars == 10**7 // 8  # a mid-size corpus: spread over workers
    assert encode.chunk_layout(2, 1, 100).chunk_chars == encode.MIN_CHUNK
    assert not encode.chunk_layout(1, 1024, 10**9).parallel  # one worker: encode in this process
    assert not encode.chunk_layout(4, 256, 10**6).parallel  # a small corpus: not worth starting processes
