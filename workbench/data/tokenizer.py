"""Tokenizers: a sentencepiece BPE trained on the train split (the default), an existing sentencepiece
`.model` or `tokenizers` `tokenizer.json`, or none at all for pre-tokenized ids.

Options of the trained one that matter for source code and for reproducibility:
- identity normalisation, no whitespace collapsing, no dummy prefix: decode(encode(t)) == t exactly;
- byte_fallback: text unseen in training (any Unicode) becomes UTF-8 byte pieces, never <unk>;
- training sentences are chunks of whole lines (newlines kept, so pieces like '):\\n' exist), fed from
  memory; past TRAIN_CHARS a deterministic sample is kept (`Sample`: sentencepiece's own shuffling is
  nondeterministic); num_threads is fixed because the model bytes record it.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import sentencepiece as spm

from ..fileio import write_bytes
from ..folder_safety import LIMITS, read_regular
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
# End-of-document tokens looked for in a tokenizer.json, in this order.
EOS_TOKENS = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eos|>", "[EOS]", "<|im_end|>")
IDS_ONLY = "workbench_ids_only"  # the key marking the file of a tokenizer-less (pre-tokenized) corpus
KINDS = ("sentencepiece", "huggingface", "none")
# Characters other than "\n" that str.splitlines ends a line at: where the fast chunking does not apply.
_OTHER_LINE_ENDS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class TokenizerFileError(RuntimeError):
    """A tokenizer file that holds no usable tokenizer; one line naming the file."""


def _first_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


class Tokenizer:
    """A tokenizer file: a sentencepiece model, a `tokenizers` tokenizer.json, or the ids-only record of a
    pre-tokenized corpus (kind 'none': it knows its vocabulary size, and cannot encode or decode).

    `Tokenizer(path)` reads any of them (told apart by content, whatever the file's name): a regular file
    of at most LIMITS["tokenizer"] bytes (else RunFolderError); a file that is none of them raises
    TokenizerFileError (one line). Picklable: it carries the file's bytes.
    """

    def __init__(self, model_path: str | Path):
        self.model_path = Path(model_path)
        self._load(read_regular(self.model_path, LIMITS["tokenizer"]))

    @classmethod
    def from_bytes(cls, blob: bytes, model_path: str | Path = "<memory>") -> Tokenizer:
        tokenizer = cls.__new__(cls)
        tokenizer.model_path = Path(model_path)
        tokenizer._load(blob)
        return tokenizer

    def _load(self, blob: bytes) -> None:
        self._blob = blob
        self._sp = self._hf = None
        self._ids_only: dict | None = None
        if blob.lstrip()[:1] == b"{":
            self._load_json(blob)
            return
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=blob)
        except Exception as err:  # sentencepiece raises RuntimeError (or a protobuf error) on a bad file
            raise TokenizerFileError(f"{self.model_path}: not a tokenizer (not a sentencepiece model: "
                                     f"{_first_line(err)})") from None
        self.kind, self._blob = "sentencepiece", self._sp.serialized_model_proto()

    def _load_json(self, blob: bytes) -> None:
        """A tokenizers tokenizer.json, or the ids-only record of a pre-tokenized corpus."""
        try:
            spec = json.loads(blob)
        except ValueError as err:
            raise TokenizerFileError(f"{self.model_path}: not a tokenizer (invalid JSON: {err})") from None
        if isinstance(spec, dict) and IDS_ONLY in spec:
            record = spec[IDS_ONLY]
            size = record.get("vocab_size") if isinstance(record, dict) else None
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise TokenizerFileError(f"{self.model_path}: malformed token-id record: {IDS_ONLY}.vocab_size must "
                                         f"be a positive integer, got {str(size)[:40]}")
            self.kind, self._ids_only = "none", record
            return
        from tokenizers import Tokenizer as HFTokenizer  # optional: installed with transformers

        try:
            self._hf = HFTokenizer.from_str(blob.decode("utf-8"))
        except Exception as err:  # tokenizers raises a bare Exception for JSON that is not a tokenizer
            raise TokenizerFileError(f"{self.model_path}: not a tokenizer (a JSON file, but not a tokenizers "
                                     f"tokenizer.json: {_first_line(err)})") from None
        self.kind = "huggingface"

    @property
    def vocab_size(self) -> int:
        if self._sp is not None:
            return self._sp.get_piece_size()
        if self._hf is not None:
            return self._hf.get_vocab_size(with_added_tokens=True)
        return int(self._ids_only["vocab_size"])

    @property
    def eos_id(self) -> int | None:
        """The id written after every document; None when the tokenizer has none."""
        if self._sp is not None:
            return self._sp.eos_id() if self._sp.eos_id() >= 0 else None
        if self._hf is not None:
            return next((i for i in map(self._hf.token_to_id, EOS_TOKENS) if i is not None), None)
        return self._ids_only.get("eos_id")

    @property
    def sha256(self) -> str:
        """The identity of the tokenizer's file (part of the corpus fingerprint)."""
        return hashlib.sha256(self._blob).hexdigest()

    def serialized(self) -> bytes:
        return self._blob

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str], num_threads: int = -1) -> list[list[int]]:
        """Encode many texts in one call (sentencepiece spreads them over `num_threads`, -1: all cores)."""
        if self._sp is not None:
            return self._sp.encode(list(texts), num_threads=num_threads)
        if self._hf is not None:
            return [e.ids for e in self._hf.encode_batch(list(texts), add_special_tokens=False)]
        raise self._no_text()

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        if self._sp is not None:
            return self._sp.decode(ids)
        if self._hf is not None:
            return self._hf.decode(ids, skip_special_tokens=False)
        raise self._no_text()

    def piece(self, token_id: int) -> str:
        if self._sp is not None:
            return self._sp.id_to_piece(int(token_id))
        if self._hf is not None:
            return self._hf.id_to_token(int(token_id))
        raise self._no_text()

    def save(self, path: str | Path) -> None:
        """Write the tokenizer's file to ``path`` atomically (a run folder keeps its own copy); an identical
        file already there is left as is."""
        path = Path(path)
        try:  # bounded and regular only: a FIFO or /dev/zero in its place is replaced, never read
            if read_regular(path, len(self._blob)) == self._blob:
                return
        except (OSError, ValueError):
            pass
        write_bytes(path, self._blob)

    def _no_text(self) -> DataError:
        return DataError("data.source", "this corpus was given as token ids (source 'bin'): there is no tokenizer "
                                        "to turn text into ids or back")

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "proto": self._blob}

    def __setstate__(self, state: dict) -> None:
        self.model_path = state["model_path"]
        self._load(state["proto"])

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind}, vocab_size={self.vocab_size}, model_path='{self.model_path}')"


def ids_only(vocab_size: int) -> bytes:
    """The file of a tokenizer-less corpus: its vocabulary size, nothing to encode with."""
    return (json.dumps({IDS_ONLY: {"vocab_size": int(vocab_size)}}, sort_keys=True) + "\n").encode("utf-8")


def load_tokenizer(path: Path) -> Tokenizer:
    """An existing tokenizer file for `data.tokenizer`, refused in one line when unusable for a corpus."""
    if not path.is_file():
        raise DataError("data.tokenizer", f"{path} does not exist (a sentencepiece .model or a tokenizer.json)")
    try:
        tokenizer = Tokenizer(path)
    except ImportError:
        raise DataError("data.tokenizer", f"{path} is a tokenizer.json: reading it needs the 'tokenizers' library "
                                          "(pip install tokenizers, or transformers)") from None
    except Exception as err:  # sentencepiece raises RuntimeError on a bad file, tokenizers a bare Exception
        message = " ".join(str(err).split())[:200]
        raise DataError("data.tokenizer", f"{path} is not a sentencepiece model or a tokenizer.json ({message})") from None
    if tokenizer.kind == "none":
        raise DataError("data.tokenizer", f"{path} holds no tokenizer (it is the record of a pre-tokenized corpus)")
    if tokenizer.eos_id is None:
        looked = "an eos piece" if tokenizer.kind == "sentencepiece" else ", ".join(EOS_TOKENS)
        raise DataError("data.tokenizer", f"{path} has no end-of-document token to separate documents (looked for "
                                          f"{looked})")
    return tokenizer


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> bytes:
    """Train on `texts` (the train split) and return the serialized model; vocab errors are `DataError`s."""
    sample = Sample()
    for text in texts:
        sample.add_text(text)
    return train_on_sentences(sample.sentences(), vocab_size)


def train_on_sentences(sentences: list[str], vocab_size: int) -> bytes:
    """Train sentencepiece on these sentences, in this order (a `Sample`'s); vocab errors are `DataError`s."""
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, **TRAINER_OPTIONS
        )
    except RuntimeError as err:
        raise _vocab_error(str(err), vocab_size) from None
    log.debug("tokenizer: trained vocab %d on %d sentences", vocab_size, len(sentences))
    return model.getvalue()


class Sample:
    """The tokenizer's training sentences, chosen from a stream in bounded memory.

    Every sentence is kept, in order, while they fit in `max_chars` (then the sample is the whole
    split). Past that, each sentence gets a key hashed from its position and the sample is the longest
    run of lowest keys that fits, in stream order: deterministic, spread over the whole split, and
    `max_chars` of memory however long the stream.
    """

    def __init__(self, max_chars: int = TRAIN_CHARS, seed: int = SUBSAMPLE_SEED):
        self.max_chars, self.seed = max_chars, seed
        self.count = self.total = 0
        self._kept: list[str] = []
        self._heap: list[tuple[int, int, str]] | None = None  # (-key, position, sentence): largest key on top

    @property
    def subsampled(self) -> bool:
        """True once the stream outgrew `max_chars` (the fingerprint records the sampling rule then)."""
        return self._heap is not None

    def add_text(self, text: str) -> None:
        for sentence in line_chunks(text):
            self.add(sentence)

    def add(self, sentence: str) -> None:
        position, self.count = self.count, self.count + 1
        self.total += len(sentence)
        if self._heap is None:
            self._kept.append(sentence)
            if self.total <= self.max_chars:
                return
            self._heap = [(-self._key(i), i, s) for i, s in enumerate(self._kept)]
            heapq.heapify(self._heap)
            self._kept = []
        else:
            heapq.heappush(self._heap, (-self._key(position), position, sentence))
        while self.total > self.max_chars:
            self.total -= len(heapq.heappop(self._heap)[2])

    def sentences(self) -> list[str]:
        if self._heap is None:
            return list(self._kept)
        return [s for _, _, s in sorted(self._heap, key=lambda item: item[1])]

    def _key(self, position: int) -> int:
        digest = hashlib.blake2b(f"{self.seed}:{position}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


def line_chunks(text: str, limit: int = CHUNK_CHARS) -> Iterator[str]:
    """Whole lines (line ends kept, as `str.splitlines` finds them) grouped into chunks of at most `limit`
    characters; a longer line is cut into `limit`-character pieces."""
    if _OTHER_LINE_ENDS.search(text):
        yield from _line_chunks_slow(text, limit)
        return
    start, n = 0, len(text)  # only "\n" ends lines: jump to the last one that fits (same chunks, much faster)
    while n - start > limit:
        end = text.rfind("\n", start, start + limit) + 1
        end = end if end > start else start + limit
        yield text[start:end]
        start = end
    if start < n:
        yield text[start:]


def _line_chunks_slow(text: str, limit: int) -> Iterator[str]:
    chunk = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if chunk:
                yield chunk
                chunk = ""
            yield line[:limit]
            line = line[limit:]
        if len(chunk) + len(line) > limit:
            yield chunk
            chunk = ""
        chunk += line
    if chunk:
        yield chunk


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

