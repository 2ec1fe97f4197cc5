"""The report's one line on the corpus a run folder trained on (results.json `data`, written from
`workbench.data.TokenData.summary()`): what was read, its fingerprint, the cap, the split, the floor."""

from __future__ import annotations

from . import fmt

NAMED_PATHS = 3  # configured paths/globs named in full; more are counted


def corpus_text(data: dict) -> str | None:
    """The corpus in one line, with the unigram loss every model must beat to have learned anything."""
    tokens, unigram = data.get("train_tokens"), data.get("unigram_val_loss")
    if not isinstance(tokens, (int, float)) or not isinstance(unigram, (int, float)):
        return None
    corpus = data.get("corpus") if isinstance(data.get("corpus"), dict) else {}
    parts = [_source(corpus, data.get("fingerprint"))]
    cap = _cap(corpus)
    if cap:
        parts.append(cap)
    share = _val_share(data)
    parts.append(f"{fmt.human(tokens)} training / {fmt.human(data.get('val_tokens') or 0)} validation tokens"
                 + (f" (val {share:.1%} of the bytes)" if share is not None else "")
                 + f", vocabulary {data.get('vocab_size')}")
    parts.append(f"unigram baseline val loss {unigram:.4f} nats/token (a model below it has learned more than "
                 "token frequencies)")
    return "; ".join(p for p in parts if p)


def _source(corpus: dict, fingerprint) -> str:
    """'the embedded corpus: this Python's standard library 3.11' or the configured paths, + fingerprint."""
    kind = corpus.get("source")
    if kind == "stdlib":
        name = f"the embedded corpus: this Python's standard library {corpus.get('python', '')}".rstrip()
    elif kind in ("files", "bin"):
        paths = [str(p) for p in corpus.get("paths") or []]
        shown = ", ".join(paths[:NAMED_PATHS]) + (f" and {len(paths) - NAMED_PATHS} more" if len(paths) > NAMED_PATHS
                                                  else "")
        files = corpus.get("files")
        name = shown + (f" ({files:,} file{'s' if files != 1 else ''})" if isinstance(files, int) else "")
        name = name if kind == "files" else f"token ids {name}"
    else:  # a results.json of an earlier version: the source was not recorded
        return f"corpus fingerprint {fingerprint}" if isinstance(fingerprint, str) else ""
    return f"{name}, fingerprint {fingerprint}" if isinstance(fingerprint, str) else name


def _cap(corpus: dict) -> str | None:
    if not corpus.get("capped"):
        return None
    files, opened, docs = corpus.get("files"), corpus.get("files_read"), corpus.get("documents_read")
    what = (f"{opened:,} of {files:,} files" if isinstance(files, int) and isinstance(opened, int) and opened < files
            else f"{docs:,} documents" if isinstance(docs, int) else "part of it")
    size = corpus.get("bytes_read")
    size = f", {size / 1e6:.2f} MB" if isinstance(size, (int, float)) else ""
    return f"capped by data.max_bytes={corpus.get('max_bytes'):,}: read {what}{size}"


def _val_share(data: dict) -> float | None:
    train, val = data.get("train_bytes"), data.get("val_bytes")
    if not isinstance(train, (int, float)) or not isinstance(val, (int, float)) or train + val <= 0:
        return None
    return val / (train + val)
