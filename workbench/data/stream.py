"""The corpus as a stream of pieces with their split, and the scan that fingerprints it.

`pieces` turns documents into `Piece`s: a document's text (or its train and val parts, for a corpus of
one document) cut into line-aligned pieces of at most `corpus.SEGMENT_CHARS`; the last piece of each
part carries `end` (an EOS token follows it). The token files are these pieces encoded, in order.

`scan` reads the stream once, in bounded memory: the corpus fingerprint (sha256 over each piece's
split, name and text, train pieces first: for documents up to SEGMENT_CHARS exactly the hash of the
earlier in-memory layer, so existing cache entries and run folders keep their fingerprint), the split
statistics, the tokenizer's training sample, and the split plan (the few corpora whose split needs the
whole document list, one document or no held-out one, are scanned a second time with it).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import SEGMENT_CHARS, Document, LongDocument, draw, segment, split_text
from .errors import DataError
from .tokenizer import Sample

TRAIN, VAL = "train", "val"
Documents = Callable[[], Iterator[Document | LongDocument]]  # a fresh pass over the corpus


@dataclass(frozen=True)
class Piece:
    split: str  # train | val
    name: str  # the document's name (its val part: name + '#val')
    text: str
    end: bool  # the last piece of its document (part): an EOS token follows


@dataclass(frozen=True)
class SplitPlan:
    """Which documents are val: those whose `draw` is below `val_fraction`, with the corrections that
    need the whole corpus (decided by a first scan)."""

    val_fraction: float
    forced_val: int | None = None  # no document drew val: this one (the lowest draw) is
    forced_train: int | None = None  # every document drew val: this one (the highest draw) is not
    single: bool = False  # one document: its tail is val
    val_from_segment: int | None = None  # ... and it is a LongDocument: val starts at this segment

    def split_of(self, index: int, name: str) -> str:
        if index == self.forced_val:
            return VAL
        if index == self.forced_train:
            return TRAIN
        return VAL if draw(name) < self.val_fraction else TRAIN


@dataclass
class Scan:
    """What one pass over the corpus found."""

    fingerprint: str
    plan: SplitPlan
    stats: dict  # {train,val}_{documents,bytes}
    pieces: int  # in the whole stream
    sample: Sample | None  # the tokenizer's training sentences (None: the tokenizer is given)
    extras: dict = field(default_factory=dict)  # what the fingerprint records beyond the earlier layout

    @property
    def total_bytes(self) -> int:
        return self.stats["train_bytes"] + self.stats["val_bytes"]


def pieces(docs: Iterable[Document | LongDocument], plan: SplitPlan) -> Iterator[Piece]:
    for index, doc in enumerate(docs):
        yield from _doc_pieces(index, doc, plan)


def scan(documents: Documents, val_fraction: float, head: dict, extras: dict, sample: Callable[[], Sample] | None,
         spool_dir: Path, empty: DataError) -> Scan:
    """Scan with the plain plan; scan again if the corpus turns out to need a corrected one."""
    plan = SplitPlan(val_fraction)
    result, facts = _scan(documents(), plan, head, extras, sample, spool_dir)
    if facts.docs == 0:
        raise empty
    if facts.docs == 1:
        plan = SplitPlan(val_fraction, single=True, val_from_segment=_tail(facts, val_fraction))
    elif facts.val == 0:
        plan = SplitPlan(val_fraction, forced_val=facts.lowest)
    elif facts.val == facts.docs:
        plan = SplitPlan(val_fraction, forced_train=facts.highest)
    else:
        return result
    return _scan(documents(), plan, head, extras, sample, spool_dir)[0]


@dataclass
class _Facts:
    """What the plan corrections need: document count, val count, extreme draws, the first document's
    segment starts (in characters) when it is a LongDocument."""

    docs: int = 0
    val: int = 0
    lowest: int = 0
    highest: int = 0
    low_draw: float = 2.0
    high_draw: float = -1.0
    first_chars: int = 0
    first_starts: list[int] = field(default_factory=list)


def _scan(docs: Iterator[Document | LongDocument], plan: SplitPlan, head: dict, extras: dict,
          sample: Callable[[], Sample] | None, spool_dir: Path) -> tuple[Scan, _Facts]:
    facts, chosen = _Facts(), sample() if sample else None
    stats = {"train_documents": 0, "val_documents": 0, "train_bytes": 0, "val_bytes": 0}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode("utf-8"))
    count = 0
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool_dir, prefix=".val-records-") as spool:  # val records, hashed after train's
        for index, doc in enumerate(docs):
            facts.docs += 1
            u = draw(doc.name)
            if u < facts.low_draw:
                facts.lowest, facts.low_draw = index, u
            if u > facts.high_draw:
                facts.highest, facts.high_draw = index, u
            facts.val += u < plan.val_fraction
            for piece in _doc_pieces(index, doc, plan, facts if index == 0 else None):
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
    if extras:  # fold in what the earlier layout did not have; absent, the fingerprint is the earlier one
        fingerprint = hashlib.sha256((json.dumps(extras, sort_keys=True) + fingerprint).encode("utf-8")).hexdigest()
    return Scan(fingerprint[:16], plan, stats, count, chosen, extras), facts


def _tail(facts: _Facts, val_fraction: float) -> int | None:
    """For a single LongDocument: the first val segment, the first starting at or after the cut."""
    if not facts.first_starts:
        return None
    if len(facts.first_starts) < 2:
        raise DataError("data.paths", "corpus too small to split into train and val (one document of one segment)")
    cut = min(max(round(facts.first_chars * (1.0 - val_fraction)), 1), facts.first_chars - 1)
    after = [i for i, start in enumerate(facts.first_starts) if start >= cut and i > 0]
    return after[0] if after else len(facts.first_starts) - 1


def _doc_pieces(index: int, doc: Document | LongDocument, plan: SplitPlan, facts: _Facts | None = None) -> Iterator[Piece]:
    if isinstance(doc, Document):
        if facts is not None:
            facts.first_chars = len(doc.text)
        if plan.single:
            train, val = split_text(doc, plan.val_fraction)
            yield from _parts([(TRAIN, train[0].name, t) for t in segment([train[0].text])])
            yield from _parts([(VAL, val[0].name, t) for t in segment([val[0].text])])
        elif len(doc.text) <= SEGMENT_CHARS:  # the common case, kept cheap: one piece
            yield Piece(plan.split_of(index, doc.name), doc.name, doc.text, True)
        else:
            split = plan.split_of(index, doc.name)
            yield from _parts((split, doc.name, t) for t in segment([doc.text]))
        return
    if plan.single:
        labelled = ((VAL, doc.name + "#val", t) if i >= plan.val_from_segment else (TRAIN, doc.name, t)
                    for i, t in enumerate(doc.segments))
    else:
        split = plan.split_of(index, doc.name)
        labelled = ((split, doc.name, t) for t in doc.segments)
    if facts is not None:
        labelled = _measured(labelled, facts)
    yield from _parts(labelled)


def _measured(labelled: Iterable[tuple[str, str, str]], facts: _Facts) -> Iterator[tuple[str, str, str]]:
    for item in labelled:
        facts.first_starts.append(facts.first_chars)
        facts.first_chars += len(item[2])
        yield item


def _parts(labelled: Iterable[tuple[str, str, str]]) -> Iterator[Piece]:
    """Pieces with `end` set on the last of each (split, name) run: one lookahead."""
    previous = None
    for item in labelled:
        if previous is not None:
            yield Piece(*previous, end=previous[:2] != item[:2])
        previous = item
    if previous is not None:
        yield Piece(*previous, end=True)
