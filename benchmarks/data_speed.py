"""Data ingestion at size: `prepare()` throughput and peak memory against sentencepiece's own encode.

    python benchmarks/data_speed.py --mb 200 [--format jsonl|text] [--workers N] [--vocab 8192] [--memory-mb 256]

Generates a corpus of `--mb` MB at run time in a temporary folder (deleted afterwards; nothing is
committed): pseudo-words of syllables drawn with a Zipf law, lines and documents of varied length,
as JSON lines files of ~50 MB (`--format jsonl`) or one text file per document (`text`).

Then, in a fresh child process (so nothing else counts in its memory), a cold `prepare()` with a new
cache: read + fingerprint, tokenizer training (sentencepiece BPE on its bounded sample), parallel
encoding. Reported: each phase's time, MB/s, and peak RSS three ways: the child's own (getrusage self),
the largest worker's (getrusage children), and the whole process tree sampled from /proc every 50 ms
(what the machine actually had to hold at once).

The baseline is sentencepiece's own multi-threaded encode (`encode(list, num_threads=workers)`) with
the same model on the same documents, already in memory (up to 200 MB of them), on the same number of
cores: the pipeline's encode phase should run at >= 0.8x of it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MB = 1_000_000


def generate(folder: Path, n_bytes: int, fmt: str, seed: int = 0) -> None:
    """Pseudo-text: 30k words of 1-4 syllables, Zipf-distributed, ~12 words a line, documents of 1-20 KB."""
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"] + ["th", "ing", "er", "an", "qu"]
    draw = random.Random(seed)
    words = sorted({"".join(draw.choices(syllables, k=draw.randint(1, 4))) for _ in range(40_000)})[:30_000]
    draw.shuffle(words)
    buffer = np.frombuffer("".join(w + " " for w in words).encode("ascii"), dtype=np.uint8)
    lengths = np.array([len(w) + 1 for w in words], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    cdf = np.cumsum(1.0 / (np.arange(len(words)) + 2.7) ** 1.1)
    cdf /= cdf[-1]
    folder.mkdir(parents=True, exist_ok=True)
    written, n_file = 0, 0
    out = None
    while written < n_bytes:
        idx = np.minimum(np.searchsorted(cdf, rng.random(500_000)), len(words) - 1)
        length = lengths[idx]
        total = int(length.sum())
        where = np.cumsum(length) - length
        text = buffer[np.repeat(starts[idx] - where, length) + np.arange(total)]  # gather the words' bytes
        text[(where + length - 1)[rng.random(len(idx)) < 1 / 12]] = ord("\n")  # some spaces end lines
        block = text.tobytes().decode("ascii")
        cuts = np.cumsum(rng.integers(1_000, 20_000, size=len(block) // 1_000 + 1))
        docs = [block[a:b] for a, b in zip(np.r_[0, cuts], cuts) if a < len(block)]
        for doc in docs:
            if fmt == "text":
                (folder / f"doc{n_file:07d}.txt").write_text(doc, encoding="ascii")
                n_file += 1
            else:
                if out is None or out.tell() > 50 * MB:
                    out = open(folder / f"part{n_file:04d}.jsonl", "w", encoding="ascii")
                    n_file += 1
                out.write(json.dumps({"text": doc}) + "\n")
            written += len(doc)
            if written >= n_bytes:
                break
    if out is not None:
        out.close()


def child(args) -> None:
    """Prepare the corpus cold; print one JSON line of timings, statistics and getrusage peaks."""
    from workbench.data import DataSettings, prepare

    settings = DataSettings(source="files", paths=["*"], max_bytes=None, vocab_size=args.vocab, workers=args.workers,
                            memory_mb=args.memory_mb, cache_dir=args.cache)
    data = prepare(settings, base_dir=args.corpus)  # names relative to the corpus: the same split every run
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"timings": data.timings, "stats": data.stats, "model": str(data.path / "tokenizer.model"),
                      "peak_self": peak_self, "peak_worker": peak_child}))


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants, from /proc (0 where it cannot be read)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return total


def baseline(corpus: Path, model: str, workers: int, limit: int, rounds: int = 3) -> tuple[float, int]:
    """sentencepiece's own encode on the same documents (in memory, up to `limit` bytes), ~1 MB of text
    per call, `workers` threads: (MB/s of the best of `rounds`, bytes)."""
    import sentencepiece as spm

    from workbench.data import DataSettings, iter_documents

    sp = spm.SentencePieceProcessor(model_file=model)
    batches, batch, size = [], [], 0
    for doc in iter_documents(DataSettings(source="files", paths=[str(corpus / "*")], max_bytes=limit), corpus):
        batch.append(doc.text)
        size += len(doc.text)
        if sum(map(len, batch)) >= MB:
            batches.append(batch)
            batch = []
    batches += [batch] if batch else []
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for texts in batches:
            sp.encode(texts, num_threads=workers)
        best = min(best, time.perf_counter() - start)
    return size / MB / best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=10, help="corpus size in MB (decimal)")
    parser.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--baseline-mb", type=float, default=200, help="text held in memory for the baseline")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    work = Path(tempfile.mkdtemp(prefix="data_speed-"))
    try:
        corpus, cache = work / "corpus", work / "cache"
        start = time.perf_counter()
        generate(corpus, int(args.mb * MB), args.format)
        print(f"generated {args.mb:g} MB ({args.format}) in {time.perf_counter() - start:.1f} s", flush=True)
        command = [sys.executable, __file__, "--child", "--corpus", str(corpus), "--cache", str(cache),
                   "--workers", str(args.workers), "--vocab", str(args.vocab), "--memory-mb", str(args.memory_mb)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        peak_tree, done = 0, threading.Event()

        def sample() -> None:
            nonlocal peak_tree
            while not done.is_set():
                peak_tree = max(peak_tree, tree_rss(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        done.set()
        sampler.join()
        if proc.returncode:
            raise SystemExit(f"prepare failed (exit {proc.returncode})")
        r = json.loads(out.strip().splitlines()[-1])
        t, s = r["timings"], r["stats"]
        text_mb = (s["train_bytes"] + s["val_bytes"]) / MB
        base, base_bytes = baseline(corpus, r["model"], args.workers, int(args.baseline_mb * MB))
        encode_rate = text_mb / t["encode_s"]
        print(f"corpus {text_mb:.1f} MB, {s['train_documents'] + s['val_documents']:,} documents, "
              f"{s['train_tokens'] + s['val_tokens']:,} tokens, vocab {args.vocab}, {args.workers} workers "
              f"({'worker processes' if t['parallel'] else 'in process'}), memory_mb {args.memory_mb}")
        print(f"read+fingerprint {t['read_s']:.1f} s ({text_mb / t['read_s']:.1f} MB/s), tokenizer {t['tokenizer_s']:.1f} s, "
              f"encode {t['encode_s']:.1f} s ({encode_rate:.2f} MB/s), total {t['total_s']:.1f} s "
              f"({text_mb / t['total_s']:.2f} MB/s)")
        print(f"sentencepiece encode, {args.workers} threads, {base_bytes / MB:.0f} MB in memory, best of 3: {base:.2f} MB/s; "
              f"pipeline encode / sentencepiece = {encode_rate / base:.2f}x")
        print(f"peak RSS: prepare process {r['peak_self'] / 2**20:.0f} MiB, largest worker {r['peak_worker'] / 2**20:.0f} "
              f"MiB, whole tree (sampled) {peak_tree / 2**20:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
