"""The report's "Data:" line names the corpus (files or the embedded one) with its fingerprint, says when
data.max_bytes capped it and what share of the bytes is val, and keeps the unigram floor."""

from __future__ import annotations

import sys

from workbench.data import DataSettings, prepare
from workbench.reports.corpus_line import corpus_text

BASE = {"fingerprint": "0123456789abcdef", "vocab_size": 2048, "unigram_val_loss": 6.29606, "train_tokens": 1_207_313,
        "val_tokens": 59_899, "train_bytes": 3_800_000, "val_bytes": 200_000}


def test_the_embedded_corpus_is_named_with_python_version_fingerprint_and_cap():
    corpus = {"source": "stdlib", "python": "3.11", "files": 610, "files_read": 232, "documents_read": 231,
              "bytes_read": 3_999_955, "max_bytes": 4_000_000, "capped": True}
    line = corpus_text({**BASE, "corpus": corpus})
    assert line.startswith("the embedded corpus: this Python's standard library 3.11, fingerprint 0123456789abcdef; ")
    assert "capped by data.max_bytes=4,000,000: read 232 of 610 files, 4.00 MB;" in line
    assert "(val 5.0% of the bytes)" in line and "1.21M training / 59.9K validation tokens" in line
    assert "unigram baseline val loss 6.2961 nats/token" in line


def test_files_are_named_as_configured_and_counted_when_many():
    few = {"source": "files", "paths": ["data/*.txt"], "files": 61, "capped": False}
    line = corpus_text({**BASE, "corpus": few})
    assert line.startswith("data/*.txt (61 files), fingerprint 0123456789abcdef; ") and "capped" not in line
    many = {"source": "files", "paths": [f"part{i}.jsonl" for i in range(5)], "files": 5, "documents_read": 1200,
            "capped": True, "files_read": 5, "max_bytes": 1000, "bytes_read": 999}
    line = corpus_text({**BASE, "corpus": many})
    assert line.startswith("part0.jsonl, part1.jsonl, part2.jsonl and 2 more (5 files)")
    assert "read 1,200 documents" in line  # the cap stopped inside the last file


def test_an_earlier_results_json_still_gets_a_line_and_no_tokens_none():
    assert corpus_text(BASE).startswith("corpus fingerprint 0123456789abcdef; 1.21M training")
    assert corpus_text({"fingerprint": "x"}) is None


def test_a_prepared_corpus_fills_the_line(tmp_path):
    (tmp_path / "a.txt").write_text("".join(f"alpha {i} beta gamma\n" for i in range(3000)), encoding="utf-8")
    (tmp_path / "b.txt").write_text("".join(f"delta {i} epsilon\n" for i in range(3000)), encoding="utf-8")
    data = prepare(DataSettings(source="files", paths=["*.txt"], vocab_size=300, max_bytes=60_000,
                                cache_dir=str(tmp_path / "cache")), tmp_path)
    line = corpus_text(data.summary())
    assert line.startswith(f"*.txt (2 files), fingerprint {data.fingerprint}; capped by data.max_bytes=60,000: read ")
    stdlib = prepare(DataSettings(max_bytes=50_000, vocab_size=400, cache_dir=str(tmp_path / "cache")), tmp_path)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert corpus_text(stdlib.summary()).startswith(f"the embedded corpus: this Python's standard library {version}, ")


def test_the_data_command_shows_the_source_the_byte_split_and_the_cap(tmp_path, capsys):
    from pathlib import Path

    from workbench.cli import main

    (tmp_path / "docs").mkdir()
    for i in range(30):
        (tmp_path / "docs" / f"d{i:02d}.txt").write_text("".join(f"word {j} of {i}\n" for j in range(300)))
    configs = Path(__file__).resolve().parent.parent / "configs"
    (tmp_path / "exp.yaml").write_text(
        f"name: capped\ndefaults: [{configs}/model/llama.yaml, {configs}/train/cpu.yaml]\nseeds: [0]\n"
        f"data: {{source: files, paths: [docs/*.txt], max_bytes: 60000, vocab_size: 300, cache_dir: {tmp_path / 'c'}}}\n"
        "variants:\n  one: {}\n")
    assert main(["data", str(tmp_path / "exp.yaml"), "data.val_fraction=0.1"]) == 0
    out = capsys.readouterr().out
    assert f"source       {tmp_path / 'docs'}/*.txt (30 files)" in out  # paths resolve against the experiment
    share = next(line for line in out.splitlines() if line.strip().startswith("bytes "))
    assert "of the bytes, data.val_fraction 0.1)" in share
    assert 5.0 <= float(share.split("(val ")[1].split("%")[0]) <= 15.0
    assert "cap          data.max_bytes=60,000 capped the corpus: it read " in out and " of 30 files" in out
