"""A sentencepiece BPE tokenizer trained on the train split: deterministic, lossless on any text.

Options that matter for source code and for reproducibility:
- identity normalisation, no whitespace collapsing, no dummy prefix: decode(encode(t)) == t exactly;
- byte_fallback: text unseen in training (any Unicode) becomes UTF-8 byte pieces, never <unk>;
- training sentences are chunks of whole lines (newlines kept, so pieces like '):\\n' exist), fed from
  memory; a corpus over TRAIN_CHARS is subsampled here with a seeded RNG (sentencepiece's own
  shuffling is nondeterministic); num_threads is fixed because the model bytes record it.
"""

from __future__ import annotations

import io
import logging
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from ..fileio import write_bytes
from .errors import DataError

log = logging.getLogger(__name__)

CHUNK_CHARS = 2000  # training sentence length: whole lines up to this many characters
TRAIN_CHARS = 8_000_000  # tokenizer training text cap; more barely changes a 2k-32k vocabulary
SUBSAMPLE_SEED = 0
TRAINER_OPTIONS = dict(  # part of the cache fingerprint: changing any option retrains
    model_type="bpe",
    byte_fallback=True,
    normalization_rule_name="identity",
    remove_extra_whitespaces=False,
    add_dummy_prefix=False,
    allow_whitespace_only_pieces=True,  # indentation runs become single pieces
    split_digits=False,
    character_coverage=0.9995,
    max_sentence_length=1 << 16,  # bytes; CHUNK_CHARS of any text fits
    num_threads=2,
    unk_id=0,
    eos_id=1,  # separates documents in the token stream
    bos_id=-1,
    pad_id=-1,
    minloglevel=2,  # silence the trainer's progress log
)


class Tokenizer:
    """Thin wrapper over a sentencepiece model file; picklable (carries the model bytes)."""

    def __init__(self, model_path: str | Path):
        self.model_path = Path(model_path)
        self._sp = spm.SentencePieceProcessor(model_file=str(self.model_path))

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts in one call (sentencepiece parallelises it)."""
        return self._sp.encode(list(texts))

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode([int(i) for i in ids])

    def piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(int(token_id))

    def save(self, path: str | Path) -> None:
        """Write the model file to ``path`` atomically (a run folder keeps its own copy); an identical
        file already there is left as is."""
        proto, path = self._sp.serialized_model_proto(), Path(path)
        try:
            if path.read_bytes() == proto:
                return
        except OSError:
            pass
        write_bytes(path, proto)

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "proto": self._sp.serialized_model_proto()}

    def __setstate__(self, state: dict) -> None:
        self.model_path = state["model_path"]
        self._sp = spm.SentencePieceProcessor(model_proto=state["proto"])

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, model_path='{self.model_path}')"


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> bytes:
    """Train on `texts` (the train split) and return the serialized model; vocab errors are `DataError`s."""
    sentences = _subsample(list(_line_chunks(texts)), TRAIN_CHARS, SUBSAMPLE_SEED)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, **TRAINER_OPTIONS
        )
    except RuntimeError as err:
        raise _vocab_error(str(err), vocab_size) from None
    log.debug("tokenizer: trained vocab %d on %d sentences", vocab_size, len(sentences))
    return model.getvalue()


def _line_chunks(texts: Iterable[str]) -> Iterable[str]:
    """Whole lines (newlines kept) grouped into chunks of at most CHUNK_CHARS (longer lines are cut)."""
    for text in texts:
        chunk = ""
        for line in text.splitlines(keepends=True):
            while len(line) > CHUNK_CHARS:
                if chunk:
                    yield chunk
                    chunk = ""
                yield line[:CHUNK_CHARS]
                line = line[CHUNK_CHARS:]
            if len(chunk) + len(line) > CHUNK_CHARS:
                yield chunk
                chunk = ""
            chunk += line
        if chunk:
            yield chunk


def _subsample(sentences: list[str], max_chars: int, seed: int) -> list[str]:
    """All sentences in order if they fit in `max_chars`; else a seeded random subset that does."""
    if sum(map(len, sentences)) <= max_chars:
        return sentences
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    keep, total = [], 0
    for i in order:
        if total >= max_chars:
            break
        keep.append(i)
        total += len(sentences[i])
    return [sentences[i] for i in sorted(keep)]


def _vocab_error(message: str, vocab_size: int) -> Exception:
    too_high = re.search(r"Vocabulary size too high.*?<=\s*(\d+)", message)
    if too_high:
        return DataError("data.vocab_size", f"{vocab_size} is too large for this corpus (at most {too_high.group(1)})")
    too_low = re.search(r"smaller than required_chars\.\s*\d+\s*vs\s*(\d+)", message)
    if too_low:
        return DataError(
            "data.vocab_size",
            f"{vocab_size} is too small for this corpus (at least {too_low.group(1)}: 256 byte pieces, "
            "special tokens and the corpus's characters)",
        )
    return RuntimeError(f"sentencepiece training failed: {message}")
