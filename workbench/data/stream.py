"""The corpus as a stream of pieces with their split, and the scan that fingerprints it.

`pieces` turns documents into `Piece`s: the units `split.Splitter` labels (a document's text, or
line-aligned parts of it), each encoded on its own; the last piece of each run of one document in one
split carries `end` (an EOS token follows it). The token files are these pieces encoded, in order.

`scan` reads the stream once, in bounded memory: the corpus fingerprint (sha256 over each piece's
split, name and text, train pieces first), the split statistics, the tokenizer's training sample and
the split plan; a corpus whose split needs a correction (`split.SplitPlan.corrected`) is scanned
again with the corrected plan, which every later pass (encoding, resuming) uses.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import Document, LongDocument
from .errors import DataError
from .split import TRAIN, VAL, Labelled, SplitPlan, Splitter
from .tokenizer import Sample

Documents = Callable[[], Iterator[Document | LongDocument]]  # a fresh pass over the corpus


@dataclass(frozen=True)
class Piece:
    split: str  # train | val
    name: str  # the document's name (its val part, for a corpus of one document: name + '#val')
    text: str
    end: bool  # the last piece of its run: an EOS token follows


@dataclass
class Scan:
    """What one pass over the corpus found."""

    fingerprint: str
    plan: SplitPlan
    stats: dict  # {train,val}_{documents,bytes}: documents count the runs an EOS ends
    pieces: int  # in the whole stream
    documents: int  # non-blank documents read
    sample: Sample | None  # the tokenizer's training sentences (None: the tokenizer is given)
    extras: dict = field(default_factory=dict)  # what the fingerprint records beyond the pieces

    @property
    def total_bytes(self) -> int:
        return self.stats["train_bytes"] + self.stats["val_bytes"]


def pieces(docs: Iterable[Document | LongDocument], plan: SplitPlan) -> Iterator[Piece]:
    return _parts(Splitter(plan).label(docs))


def split_pieces(docs: list[Document], val_fraction: float) -> list[Piece]:
    """In memory, the pieces a preparation encodes: the split plan settled as `scan` settles it."""
    plan = SplitPlan(val_fraction)
    while True:
        splitter = Splitter(plan)
        stream = list(_parts(splitter.label(docs)))
        if not splitter.documents:
            raise DataError("data.paths", "empty corpus")
        better = plan.corrected(splitter)
        if better is None:
            return stream
        plan = better


def split_documents(docs: list[Document], val_fraction: float) -> tuple[list[Document], list[Document]]:
    """In memory, what the token files hold: (train, val) runs of text, each followed by EOS there."""
    stream = split_pieces(docs, val_fraction)
    return _joined(stream, TRAIN), _joined(stream, VAL)


def scan(documents: Documents, val_fraction: float, head: dict, extras: dict, sample: Callable[[], Sample] | None,
         spool_dir: Path, empty: DataError) -> Scan:
    """Scan with the plain plan; scan again while the corpus calls for a corrected one."""
    plan = SplitPlan(val_fraction)
    while True:
        result, splitter = _scan(documents(), plan, head, extras, sample, spool_dir)
        if splitter.documents == 0:
            raise empty
        better = plan.corrected(splitter)
        if better is None:
            return result
        plan = better


def _scan(docs: Iterator[Document | LongDocument], plan: SplitPlan, head: dict, extras: dict,
          sample: Callable[[], Sample] | None, spool_dir: Path) -> tuple[Scan, Splitter]:
    splitter, chosen = Splitter(plan), sample() if sample else None
    stats = {"train_documents": 0, "val_documents": 0, "train_bytes": 0, "val_bytes": 0}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode("utf-8"))
    count = 0
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool_dir, prefix=".val-records-") as spool:  # val records, hashed after train's
        for piece in _parts(splitter.label(docs)):
            count += 1
            text = piece.text.encode("utf-8")
            record = f"\0{piece.split}\0{piece.name}\0{len(text)}\0".encode("utf-8")
            stats[f"{piece.split}_bytes"] += len(text)
            stats[f"{piece.split}_documents"] += piece.end
            if piece.split == TRAIN:
                digest.update(record)
                digest.update(text)
                if chosen is not None:
                    chosen.add_text(piece.text)
            else:
                spool.write(record)
                spool.write(text)
        spool.seek(0)
        for block in iter(lambda: spool.read(1 << 20), b""):
            digest.update(block)
    extras = dict(extras)
    if chosen is not None and chosen.subsampled:
        extras["sample"] = "blake2b-position-lowest-keys"
    fingerprint = digest.hexdigest()
    if extras:  # fold in what only the scan knows (a given tokenizer, a subsampled tokenizer sample)
        fingerprint = hashlib.sha256((json.dumps(extras, sort_keys=True) + fingerprint).encode("utf-8")).hexdigest()
    return Scan(fingerprint[:16], plan, stats, count, splitter.documents, chosen, extras), splitter


def _parts(labelled: Iterable[Labelled]) -> Iterator[Piece]:
    """Pieces with `end` set on the last of each (split, name) run: one lookahead."""
    previous = None
    for item in labelled:
        if previous is not None:
            yield Piece(*previous, end=previous[:2] != item[:2])
        previous = item
    if previous is not None:
        yield Piece(*previous, end=True)


def _joined(stream: list[Piece], split: str) -> list[Document]:
    runs, text = [], ""
    for piece in stream:
        if piece.split == split:
            text += piece.text
            if piece.end:
                runs.append(Document(piece.name, text))
                text = ""
    return runs
