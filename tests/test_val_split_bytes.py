"""The val split holds `data.val_fraction` of the bytes, whatever the shape of the corpus (issue 26):
one huge document among small ones, one huge document alone, many or few equal documents, a document
larger than the cap; checked against an exact re-implementation of the rule and its bound."""

from __future__ import annotations

import functools
import logging
import random
import zlib
from fractions import Fraction

import numpy as np
import pytest

from workbench.data import DataSettings, Document, prepare, split_documents
from workbench.data.corpus import segment
from workbench.data.split import MIN_UNIT_CHARS, UNIT_CHARS, SplitPlan, Splitter
from workbench.data.stream import split_pieces

FRACTIONS = (0.01, 0.05, 0.2, 0.5)
WORDS = ["def", "return", "self", "value", "x", "(", ")", ":", "=", "for", "in", "while", "import", "    "]


def lines(rng: random.Random, n_chars: int) -> str:
    out, size = [], 0
    while size < n_chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))) + "\n"
        out.append(line)
        size += len(line)
    return "".join(out)


@functools.cache
def shapes() -> dict[str, list[Document]]:
    rng = random.Random(26)
    small = [Document(f"small/{i:03d}.txt", lines(rng, rng.randint(200, 4000))) for i in range(150)]
    huge = Document("m_huge.txt", lines(rng, 1_500_000))
    return {
        "one huge among many small": small[:75] + [huge] + small[75:],
        "one huge alone": [huge],
        "one huge and two tiny": [Document("a.txt", "alpha\n"), huge, Document("z.txt", "omega\n")],
        "many equal": [Document(f"eq/{i:04d}.txt", lines(rng, 3000)) for i in range(400)],
        "few equal": [Document(f"few/{i}.txt", lines(rng, 20_000)) for i in range(5)],
    }


def byte_share(docs: list[Document], fraction: float) -> tuple[int, int]:
    train, val = split_documents(docs, fraction)
    size = lambda part: sum(len(d.text.encode("utf-8")) for d in part)  # noqa: E731
    assert train and val
    return size(val), size(train) + size(val)


@pytest.mark.parametrize("shape", list(shapes()))
@pytest.mark.parametrize("fraction", FRACTIONS)
def test_val_bytes_are_within_half_of_val_fraction(shape, fraction):
    docs = shapes()[shape]
    val, total = byte_share(docs, fraction)
    assert fraction / 2 <= val / total <= 1.5 * fraction, (shape, fraction, val / total)
    if shape == "one huge alone":  # its tail: val_fraction up to the line start before the cut
        assert abs(val - fraction * total) <= max(len(line) for line in docs[0].text.splitlines(True))
    elif fraction * total >= 2 * UNIT_CHARS:  # no correction: the bound of the first pass
        assert abs(val - fraction * total) < UNIT_CHARS


def test_the_split_keeps_every_byte_once_in_order():
    docs = shapes()["one huge among many small"]
    train, val = split_documents(docs, 0.05)
    text = "".join(d.text for d in docs)
    assert sum(map(len, (d.text for d in train + val))) == len(text)
    pieces = split_pieces(docs, 0.05)
    assert "".join(p.text for p in pieces) == text and pieces[-1].end
    assert all(len(p.text) <= UNIT_CHARS for p in pieces)


def reference(docs: list[Document], fraction: float, scale: int) -> list[tuple[str, str]]:
    """The rule, exactly: unit k of a document is val when draw < f + (f*T - V) / S (bytes so far)."""
    f, total, val, out = Fraction(fraction), 0, 0, []
    for doc in docs:
        for k, unit in enumerate(segment([doc.text], scale)):
            key = doc.name if k == 0 else f"{doc.name}#{k}"
            is_val = Fraction(zlib.crc32(key.encode("utf-8")), 2**32) < f + (f * total - val) / scale
            size = len(unit.encode("utf-8"))
            total, val = total + size, val + size * is_val
            out.append(("val" if is_val else "train", unit))
    return out


@pytest.mark.parametrize("shape", ["one huge among many small", "many equal"])
def test_units_follow_the_rule_exactly(shape):
    docs = shapes()[shape]
    splitter = Splitter(SplitPlan(0.05))
    labelled = [(split, text) for split, _, text in splitter.label(docs)]
    assert SplitPlan(0.05).corrected(splitter) is None  # a first pass is final for these corpora
    assert labelled == reference(docs, 0.05, UNIT_CHARS)


def test_a_document_in_one_unit_is_val_by_its_own_draw_while_on_target():
    """With nothing owed (the first unit), the rule is the per-document draw of earlier versions."""
    for name in (f"doc{i}.txt" for i in range(200)):
        (split, _, _), = Splitter(SplitPlan(0.3)).label([Document(name, "x = 1\n")])
        assert (split == "val") == (zlib.crc32(name.encode()) / 2**32 < 0.3)


def test_small_and_large_documents_are_held_out_alike():
    """The threshold moves for every unit alike, so val is not made of the small documents."""
    rng = random.Random(7)
    docs = [Document(f"d{i:04d}", lines(rng, rng.choice([300, 6_000]))) for i in range(800)]
    train, val = split_documents(docs, 0.1)
    held = {d.name for d in val}
    small = [d.name for d in docs if len(d.text) < 1000]
    large = [d.name for d in docs if len(d.text) >= 1000]
    rate = lambda names: sum(n in held for n in names) / len(names)  # noqa: E731
    assert 0.06 < rate(small) < 0.15 and 0.06 < rate(large) < 0.15, (rate(small), rate(large))


@pytest.mark.parametrize("fraction", [1e-9, 0.5, 1 - 1e-9])
def test_a_tiny_corpus_still_gets_both_splits(fraction):
    for docs in ([Document("a.txt", "alpha\n"), Document("b.txt", "beta\n")],
                 [Document(f"{i}.txt", f"line {i}\n") for i in range(7)]):
        train, val = split_documents(docs, fraction)
        assert train and val


def test_a_small_corpus_is_split_into_smaller_units():
    docs = shapes()["few equal"]  # 5 documents of 20 kB: whole documents cannot make 5% of the bytes
    pieces = split_pieces(docs, 0.05)
    assert MIN_UNIT_CHARS <= max(len(p.text) for p in pieces) < 20_000


# --- through prepare: the cap, the warning, what results.json gets -----------------------------------

@pytest.fixture(scope="module")
def capped_corpus(tmp_path_factory):
    """A huge document sorted first, then small ones: the cap keeps the huge one and a few small ones."""
    folder = tmp_path_factory.mktemp("huge")
    rng = random.Random(5)
    (folder / "a_huge.txt").write_text(lines(rng, 250_000), encoding="utf-8")
    for i in range(60):
        (folder / f"b{i:02d}.txt").write_text(lines(rng, 2_000), encoding="utf-8")
    return folder


@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_a_capped_corpus_with_one_huge_document(capped_corpus, tmp_path, caplog, fraction):
    config = DataSettings(source="files", paths=["*.txt"], vocab_size=300, max_bytes=270_000,
                          val_fraction=fraction, cache_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="workbench.data"):
        data = prepare(config, capped_corpus)
    share = data.stats["val_bytes"] / (data.stats["train_bytes"] + data.stats["val_bytes"])
    assert fraction / 2 <= share <= 1.5 * fraction
    assert int(np.sum(data.val == data.tokenizer.eos_id)) == data.stats["val_documents"]
    corpus = data.summary()["corpus"]
    assert corpus["capped"] and corpus["files"] == 61 and 1 < corpus["files_read"] < 61
    assert corpus["documents_read"] == corpus["files_read"] and 260_000 < corpus["bytes_read"] <= 270_000
    assert f"read {corpus['files_read']} of 61 files" in caplog.text and "data.max_bytes=270,000" in caplog.text
    described = data.describe()
    assert f"(val {share:.1%} of the bytes, data.val_fraction {fraction})" in described and "capped" in described


def test_a_document_larger_than_the_cap(capped_corpus, tmp_path, caplog):
    config = DataSettings(source="files", paths=["a_huge.txt", "b00.txt"], vocab_size=300, max_bytes=120_000,
                          cache_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="workbench.data"):
        data = prepare(config, capped_corpus)
    share = data.stats["val_bytes"] / (data.stats["train_bytes"] + data.stats["val_bytes"])
    assert 0.025 <= share <= 0.075  # one document (cut by the cap): its tail
    corpus = data.corpus
    assert corpus["capped"] and corpus["files_read"] == 1 and corpus["documents_read"] == 1
    assert "read 1 of 2 files" in caplog.text


def test_no_cap_note_when_everything_was_read(capped_corpus, tmp_path, caplog):
    total = sum(len(p.read_bytes()) for p in capped_corpus.glob("b*.txt"))
    for cap in (None, total):  # a cap met exactly at the end of the input stopped nothing
        config = DataSettings(source="files", paths=["b*.txt"], vocab_size=300, max_bytes=cap,
                              cache_dir=str(tmp_path))
        with caplog.at_level(logging.WARNING, logger="workbench.data"):
            data = prepare(config, capped_corpus)
        assert not data.corpus["capped"] and data.corpus["files_read"] == 60 and "capped" not in caplog.text
    smaller = prepare(DataSettings(source="files", paths=["b*.txt"], vocab_size=300, max_bytes=total - 1,
                                   cache_dir=str(tmp_path)), capped_corpus)
    assert smaller.corpus["capped"]
