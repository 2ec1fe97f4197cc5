"""Corpora as users bring them: JSON lines, Parquet and compressed text train end to end; an existing
sentencepiece model or tokenizer.json sets the vocabulary and reports bits per byte correctly;
pre-tokenized nanoGPT .bin pairs train; what cannot be read is refused in one line naming the file."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch

from workbench.cli import main
from workbench.config import ConfigError, load_experiment
from workbench.data import DataError, DataSettings, load_corpus, prepare, split_documents, stdlib_files, stdlib_root

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
HAVE_PYARROW = importlib.util.find_spec("pyarrow") is not None
HAVE_ZSTD = importlib.util.find_spec("zstandard") is not None
HAVE_TOKENIZERS = importlib.util.find_spec("tokenizers") is not None
NO_PYARROW = "pyarrow is not installed (pip install 'lm-ablation-workbench[parquet]')"
NO_ZSTD = "zstandard is not installed (pip install 'lm-ablation-workbench[zstd]')"
NO_TOKENIZERS = "the tokenizers library is not installed (it comes with transformers)"

EXPERIMENT = """
name: {name}
defaults: [{configs}/model/llama.yaml, {configs}/train/cpu.yaml]
seeds: [0]
model: {{dim: 32, n_layers: 1, n_heads: 2}}
data: {{source: files, paths: [docs/*.txt], max_bytes: 1000000, vocab_size: 400, cache_dir: {cache}}}
train: {{steps: 4, batch_size: 4, seq_len: 32, warmup_steps: 1, eval_every: 2, checkpoint_every: 2, eval_batches: 2,
        log_every: 2}}
variants:
{variants}
"""


def texts(count: int = 80) -> list[str]:
    """Real documents (small stdlib sources, ~250 KB), with a little non-ASCII text."""
    root = stdlib_root()
    small = [p for p in (root / name for name in stdlib_files(root)) if 500 < p.stat().st_size < 8000]
    return [p.read_text(encoding="utf-8", errors="replace") + f"\n# ünïcode ✓ {i}\n" for i, p in enumerate(small[:count])]


def write_experiment(folder: Path, variants: dict[str, dict], name: str = "formats") -> Path:
    lines = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in variants.items())
    path = folder / f"{name}.yaml"
    path.write_text(EXPERIMENT.format(name=name, configs=CONFIGS, cache=folder / "cache", variants=lines))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """One set of documents in every format, and tokenizers of others' making, in one folder."""
    root = tmp_path_factory.mktemp("formats")
    docs = texts()
    for sub in ("docs", "gz", "zst"):
        (root / sub).mkdir()
    for i, text in enumerate(docs):
        (root / "docs" / f"d{i:03d}.txt").write_text(text, encoding="utf-8")
        (root / "gz" / f"d{i:03d}.txt.gz").write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
        if HAVE_ZSTD:
            import zstandard

            (root / "zst" / f"d{i:03d}.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(text.encode("utf-8")))
    records = [{"id": i, "text": t, "lang": "py"} for i, t in enumerate(docs)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (root / "corpus.jsonl.gz").write_bytes(gzip.compress((root / "corpus.jsonl").read_bytes(), mtime=0))
    if HAVE_PYARROW:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), root / "corpus.parquet", row_group_size=25)
        (root / "saved").mkdir()  # what datasets' save_to_disk writes: Arrow IPC streams, a few batches each
        table = pa.Table.from_pylist(records)
        for part, rows in enumerate((table.slice(0, 50), table.slice(50))):
            with pa.OSFile(str(root / "saved" / f"data-{part:05d}-of-00002.arrow"), "wb") as sink:
                with pa.ipc.new_stream(sink, rows.schema) as writer:
                    writer.write_table(rows, max_chunksize=16)
    lines = [line for t in docs for line in t.splitlines(keepends=True) if line.strip()]
    model = io.BytesIO()  # someone else's sentencepiece model: unigram, NFKC, dummy prefix, eos id 2
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=300,
                                   model_type="unigram", minloglevel=2, num_threads=1)
    (root / "own.model").write_bytes(model.getvalue())
    if HAVE_TOKENIZERS:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=420, special_tokens=["<|endoftext|>"],
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                          show_progress=False))
        tok.save(str(root / "tokenizer.json"))
    return root


VARIANTS = {
    "plain": {},
    "jsonl": {"data": {"paths": ["corpus.jsonl"]}},
    "text_gz": {"data": {"paths": ["gz/*.txt.gz"]}},
    "spm_model": {"data": {"tokenizer": "own.model"}},
}


@pytest.fixture(scope="module")
def trained(corpus) -> dict:
    """One experiment, one variant per format and tokenizer (those this machine can read), run end to end
    through the CLI (train, results.json, report)."""
    variants = dict(VARIANTS)
    if HAVE_PYARROW:
        variants["parquet"] = {"data": {"paths": ["corpus.parquet"]}}
    if HAVE_ZSTD:
        variants["text_zst"] = {"data": {"paths": ["zst/*.txt.zst"]}}
    if HAVE_TOKENIZERS:
        variants["hf_json"] = {"data": {"tokenizer": "tokenizer.json"}}
    exp = write_experiment(corpus, variants)
    out = corpus / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    return {"exp": exp, "results": results, "experiment": load_experiment(exp)}


def completed(trained: dict, variant: str) -> dict:
    run = trained["results"]["variants"][variant]["runs"][0]
    assert run["status"] == "completed" and run["steps"] == 4 and math.isfinite(run["final_val_loss"])
    return run


def prepared(trained: dict, variant: str):
    """The variant's corpus again (a cache hit) and its val documents, read independently of the cache."""
    config = DataSettings(**trained["experiment"].variants[variant].data)
    data = prepare(config, trained["exp"].parent)
    assert data.cache_hit
    _, val = split_documents(load_corpus(config, trained["exp"].parent), config.val_fraction)
    return data, val


@pytest.mark.parametrize("variant", [
    "jsonl", "text_gz",
    pytest.param("parquet", marks=pytest.mark.skipif(not HAVE_PYARROW, reason=NO_PYARROW)),
    pytest.param("text_zst", marks=pytest.mark.skipif(not HAVE_ZSTD, reason=NO_ZSTD)),
])
@pytest.mark.e2e
def test_formats_train_end_to_end_on_the_same_documents(trained, variant):
    """Each format trains; its documents are the plain files' (same count, same bytes), and the token
    files decode back to the val documents' text."""
    completed(trained, variant)
    data, val = prepared(trained, variant)
    plain, _ = prepared(trained, "plain")
    assert data.vocab_size == 400 and data.stats["train_documents"] + data.stats["val_documents"] == len(texts())
    assert data.stats["train_bytes"] + data.stats["val_bytes"] == plain.stats["train_bytes"] + plain.stats["val_bytes"]
    assert data.tokenizer.decode(data.val) == "".join(d.text for d in val)


def test_compressed_json_lines_read_like_the_plain_file(corpus):
    plain = load_corpus(DataSettings(source="files", paths=["corpus.jsonl"]), corpus)
    packed = load_corpus(DataSettings(source="files", paths=["corpus.jsonl.gz"]), corpus)
    assert [d.text for d in packed] == [d.text for d in plain] == texts()
    assert [d.name for d in plain][:2] == ["corpus.jsonl:1", "corpus.jsonl:2"]  # a record is named by its line


@pytest.mark.skipif(not HAVE_PYARROW, reason=NO_PYARROW)
def test_a_saved_datasets_folder_reads_like_json_lines(corpus):
    """`paths: [folder/*.arrow]`: the Arrow IPC streams `datasets.Dataset.save_to_disk` writes, read offline."""
    saved = load_corpus(DataSettings(source="files", paths=["saved/*.arrow"]), corpus)
    assert [d.text for d in saved] == texts()
    assert saved[0].name == "saved/data-00000-of-00002.arrow:0"


def check_bits_per_byte(trained: dict, variant: str, encode) -> None:
    """Token files = the tokenizer's own encoding of each document + EOS; val_bpb = loss / ln 2 / (val bytes /
    val tokens), both computed here from the documents."""
    run = completed(trained, variant)
    data, val = prepared(trained, variant)
    eos = data.tokenizer.eos_id
    expected = np.concatenate([np.asarray(encode(d.text) + [eos], dtype=np.int64) for d in val])
    np.testing.assert_array_equal(np.asarray(data.val, dtype=np.int64), expected)
    val_bytes = sum(len(d.text.encode("utf-8")) for d in val)
    assert run["val_bpb"] == pytest.approx(run["final_val_loss"] / math.log(2) / (val_bytes / len(expected)), rel=1e-12)
    params = {name: trained["results"]["variants"][name]["params"] for name in (variant, "plain")}
    assert data.vocab_size != 400 and params[variant] != params["plain"]  # the embedding follows the tokenizer
    assert trained["results"]["variants"][variant]["config"]["data"]["vocab_size"] == data.vocab_size


@pytest.mark.e2e
def test_an_existing_sentencepiece_model_trains_and_reports_bits_per_byte(trained, corpus):
    sp = spm.SentencePieceProcessor(model_file=str(corpus / "own.model"))
    check_bits_per_byte(trained, "spm_model", sp.encode)
    data, _ = prepared(trained, "spm_model")
    assert data.vocab_size == sp.get_piece_size() == 300 and data.tokenizer.eos_id == sp.eos_id() == 2


@pytest.mark.e2e
@pytest.mark.skipif(not HAVE_TOKENIZERS, reason=NO_TOKENIZERS)
def test_a_tokenizer_json_trains_and_reports_bits_per_byte(trained, corpus):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(corpus / "tokenizer.json"))
    check_bits_per_byte(trained, "hf_json", lambda text: tok.encode(text, add_special_tokens=False).ids)
    data, _ = prepared(trained, "hf_json")
    assert data.vocab_size == tok.get_vocab_size() and data.tokenizer.eos_id == tok.token_to_id("<|endoftext|>")
    assert data.tokenizer.kind == "huggingface"


@pytest.mark.e2e
@pytest.mark.skipif(not HAVE_TOKENIZERS, reason=NO_TOKENIZERS)
def test_a_tokenizer_json_run_exports_a_plain_folder_whose_lines_load_its_tokenizer(trained, corpus, tmp_path):
    from workbench.export import PLAIN_LOAD, PLAIN_TOKENIZERS, export_run
    from workbench.load import load_run

    out = tmp_path / "exported"
    exported = export_run(corpus / "out", "hf_json", out)
    assert exported.form == "plain" and "huggingface" in exported.reason
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "tokenizer.json"]
    lines = PLAIN_LOAD.format(dir=out) + "\n" + PLAIN_TOKENIZERS["huggingface"][1].format(dir=out)
    assert lines in (out / "README.md").read_text().replace("DIR", str(out))
    assert PLAIN_TOKENIZERS["huggingface"][1].format(dir="DIR") in (Path(__file__).resolve().parent.parent / "README.md").read_text()
    namespace = {}
    exec(lines, namespace)  # what the folder's README tells a reader to run
    model, tokenizer = load_run(corpus / "out", "hf_json")
    text = "def main():\n    return 0\n"
    ids = namespace["tokenizer"].encode(text, add_special_tokens=False).ids
    assert ids == tokenizer.encode(text)
    x = torch.tensor([ids])
    with torch.no_grad():
        torch.testing.assert_close(namespace["model"](x), model(x), rtol=0, atol=0)


def test_the_tokenizer_file_is_part_of_the_fingerprint(corpus, tmp_path):
    base = dict(source="files", paths=["docs/*.txt"], vocab_size=400, cache_dir=str(tmp_path))
    own = prepare(DataSettings(**base, tokenizer="own.model"), corpus)
    other = tmp_path / "other.model"
    model = io.BytesIO()
    lines = [t for t in texts(40) for t in t.splitlines(keepends=True) if t.strip()]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=300,
                                   model_type="bpe", minloglevel=2, num_threads=1)
    other.write_bytes(model.getvalue())
    assert prepare(DataSettings(**base, tokenizer=str(other)), corpus).fingerprint != own.fingerprint


# --- pre-tokenized ids ------------------------------------------------------------------------------

def write_bins(folder: Path, vocab: int = 300, dtype=np.uint16) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    pair = folder / "train.bin", folder / "val.bin"
    for path, n in zip(pair, (40_000, 4_000)):
        (rng.zipf(1.3, n) % vocab).astype(dtype).tofile(path)
    return pair


@pytest.mark.e2e
def test_a_bin_pair_trains(tmp_path):
    """nanoGPT's train.bin/val.bin: trained as they are; bits per byte from data.bytes_per_token."""
    from workbench.experiment import run_experiment

    write_bins(tmp_path / "shakespeare")
    exp = write_experiment(tmp_path, {"ids": {"data": {"source": "bin", "paths": ["shakespeare/train.bin",
                                                                                   "shakespeare/val.bin"],
                                                       "vocab_size": 300, "bytes_per_token": 3.5}}}, name="bins")
    experiment = load_experiment(exp)
    run_experiment(experiment, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    run = results["variants"]["ids"]["runs"][0]
    assert run["status"] == "completed" and run["steps"] == 4
    assert run["val_bpb"] == pytest.approx(run["final_val_loss"] / math.log(2) / 3.5, rel=1e-12)
    data = prepare(DataSettings(**experiment.variants["ids"].data), tmp_path)
    np.testing.assert_array_equal(data.val, np.fromfile(tmp_path / "shakespeare" / "val.bin", dtype=np.uint16))
    assert data.vocab_size == 300 and data.tokenizer.kind == "none" and data.cache_hit


def test_a_bin_pair_without_bytes_per_token_has_no_bits_per_byte(tmp_path):
    train, val = write_bins(tmp_path, vocab=70_000, dtype=np.uint32)
    config = DataSettings(source="bin", paths=[str(train), str(val)], vocab_size=70_000, token_dtype="uint32",
                          cache_dir=str(tmp_path / "cache"))
    data = prepare(config)
    assert data.val_bytes_per_token is None and data.bits_per_byte(2.0) is None
    assert data.train.dtype == np.uint32 and len(data.train) == 40_000
    assert "unknown: token ids were given" in data.describe()
    with pytest.raises(DataError, match="no tokenizer"):
        data.tokenizer.encode("text")
    counts = np.bincount(np.fromfile(train, dtype=np.uint32), minlength=70_000) + 1.0
    log_p = np.log(counts / counts.sum())
    expected = -log_p[np.fromfile(val, dtype=np.uint32)].mean()
    assert data.unigram_val_loss == pytest.approx(expected, rel=1e-9)


def test_bin_pairs_that_do_not_fit_are_refused(tmp_path):
    train, val = write_bins(tmp_path, vocab=300)
    with pytest.raises(DataError, match="at least") as err:
        prepare(DataSettings(source="bin", paths=[str(train), str(val)], vocab_size=100, cache_dir=str(tmp_path)))
    assert err.value.key == "data.vocab_size" and "train.bin" in str(err.value)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x00\x02\x00\x03")
    with pytest.raises(DataError, match="whole number") as err:
        prepare(DataSettings(source="bin", paths=[str(train), str(odd)], vocab_size=300, cache_dir=str(tmp_path)))
    assert err.value.key == "data.paths" and "odd.bin" in str(err.value)


# --- refusals ---------------------------------------------------------------------------------------

def broken_files(folder: Path) -> dict[str, tuple[str, str, str]]:
    """name -> (file, key, words of the message)."""
    folder.mkdir(parents=True, exist_ok=True)
    blob = gzip.compress(("hello world\n" * 20_000).encode())
    (folder / "cut.txt.gz").write_bytes(blob[:len(blob) // 2])
    (folder / "image.txt").write_bytes(bytes(range(256)) * 40)
    (folder / "bad.jsonl").write_text('{"text": "fine"}\n{"text": "broken\n')
    (folder / "nofield.jsonl").write_text('{"body": "no text here"}\n')
    (folder / "number.jsonl").write_text('{"text": 42}\n')
    (folder / "junk.parquet").write_bytes(b"PAR1 this is not parquet at all")
    (folder / "junk.arrow").write_bytes(b"ARROW1 this is not arrow either" * 10)
    cases = {
        "truncated gzip": ("cut.txt.gz", "data.paths", "corrupt or truncated gzip"),
        "binary text file": ("image.txt", "data.paths", "binary content"),
        "broken json line": ("bad.jsonl", "data.paths", "bad.jsonl:2: not a JSON line"),
        "missing text field": ("nofield.jsonl", "data.text_field", "has no field 'text' (fields: body)"),
        "text field not text": ("number.jsonl", "data.text_field", "holds int, not text"),
    }
    if HAVE_PYARROW:
        cases["corrupt parquet"] = ("junk.parquet", "data.paths", "not a readable Parquet file")
        cases["corrupt arrow"] = ("junk.arrow", "data.paths", "not a readable Arrow file")
    return cases


@pytest.mark.parametrize("case", ["truncated gzip", "binary text file", "broken json line", "missing text field",
                                  "text field not text", "corrupt parquet", "corrupt arrow"])
def test_unreadable_input_is_refused_in_one_line_naming_the_file(tmp_path, case):
    cases = broken_files(tmp_path)
    if case not in cases:
        pytest.skip(NO_PYARROW)
    name, key, words = cases[case]
    with pytest.raises(DataError) as err:
        prepare(DataSettings(source="files", paths=[name], cache_dir=str(tmp_path / "cache")), tmp_path)
    assert err.value.key == key and words in str(err.value) and name in str(err.value)
    assert "\n" not in str(err.value)


def test_the_cli_refuses_a_corrupt_file_with_exit_2_and_one_line(tmp_path, capsys):
    broken_files(tmp_path)
    exp = write_experiment(tmp_path, {"gz": {"data": {"paths": ["cut.txt.gz"]}}}, name="broken")
    assert main(["data", str(exp)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "cut.txt.gz" in err and "data.paths" in err and "\n" not in err


def test_a_missing_optional_library_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "a.txt.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 8)
    (tmp_path / "a.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    for name, extra in (("a.txt.zst", "lm-ablation-workbench[zstd]"), ("a.parquet", "lm-ablation-workbench[parquet]")):
        with pytest.raises(DataError, match=extra.replace("[", r"\[").replace("]", r"\]")) as err:
            prepare(DataSettings(source="files", paths=[name], cache_dir=str(tmp_path)), tmp_path)
        assert name in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(not HAVE_TOKENIZERS, reason=NO_TOKENIZERS)
def test_a_tokenizer_without_an_end_of_document_token_is_refused(corpus, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts(20), trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(tmp_path / "noeos.json"))
    (tmp_path / "garbage.model").write_bytes(b"not a model")
    for name, words in (("noeos.json", "no end-of-document token"), ("garbage.model", "not a sentencepiece model")):
        with pytest.raises(DataError, match=words) as err:
            prepare(DataSettings(source="files", paths=[str(corpus / "docs" / "d000.txt")], tokenizer=str(tmp_path / name),
                                 cache_dir=str(tmp_path)), tmp_path)
        assert err.value.key == "data.tokenizer" and name in str(err.value)


def test_config_checks_of_the_data_section(corpus, tmp_path):
    docs = str(corpus / "docs" / "*.txt")
    exp = write_experiment(tmp_path, {"a": {"data": {"paths": [docs], "tokenizer": "missing.model"}}}, name="nomodel")
    with pytest.raises(ConfigError, match="data.tokenizer") as err:
        load_experiment(exp)
    assert "missing.model" in str(err.value)
    exp = write_experiment(tmp_path, {"a": {"data": {"source": "bin", "paths": ["x.bin"]}}}, name="onebin")
    with pytest.raises(ConfigError, match="exactly two files"):
        load_experiment(exp)
    train, val = write_bins(tmp_path / "ids", vocab=65)
    exp = write_experiment(tmp_path, {"chars": {"data": {"source": "bin", "paths": [str(train), str(val)],
                                                         "vocab_size": 65}}}, name="chars")
    assert load_experiment(exp).variants["chars"].data["vocab_size"] == 65  # a character-level vocabulary is fine
    exp = write_experiment(tmp_path, {"a": {"data": {"paths": [docs], "bytes_per_token": 3.0}}}, name="bpt")
    with pytest.raises(ConfigError, match="data.bytes_per_token"):
        load_experiment(exp)


# --- the data command -------------------------------------------------------------------------------

def test_the_data_command_prepares_then_reports(corpus, tmp_path, capsys):
    exp = write_experiment(tmp_path, {"jsonl": {"data": {"paths": [str(corpus / "corpus.jsonl")]}},
                                      "again": {"data": {"paths": [str(corpus / "corpus.jsonl")]}, "model": {"dim": 64}}},
                           name="describe")
    assert main(["data", str(exp), "data.val_fraction=0.1"]) == 0
    first = capsys.readouterr().out
    for words in ("documents", "train ", "bytes", "tokens", "bytes/token", "cache", "prepared now", "sentencepiece, vocabulary 400",
                  "== again ==  the same data as jsonl"):
        assert words in first
    assert main(["data", str(exp), "data.val_fraction=0.1"]) == 0
    assert "(cached)" in capsys.readouterr().out
