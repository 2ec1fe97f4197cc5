"""The train/val split: which text is held out, in bytes, decided while the corpus streams past.

The rule. Every document is cut into units: its text when it holds at most `SplitPlan.unit_chars`
characters, else line-aligned pieces of at most that many (`corpus.segment`). Units are decided in
stream order, unit k of document `name` by its draw `draw(name)` (k = 0) or `draw(name#k)`: it is val
when

    draw < val_fraction + (val_fraction * T - V) / S

where T and V are the bytes (UTF-8) of all units so far and of the val ones, and S = unit_chars. While
the stream is on target the second term is zero and a document is val by its own draw, as a random
sample of documents would be; when val is behind or ahead, the draw's threshold moves for every unit
alike (small and large units are equally likely to be val). The shift keeps
|V - val_fraction * T| < max(S, largest unit in bytes) at every point of the stream, so one huge
document, cut into units, cannot make val a multiple of val_fraction: on a corpus of T bytes the val
share is within val_fraction +- S / T (text of one byte per character).

Corrections, decided from a first pass (`SplitPlan.corrected`) and applied by another:
- one document: val is its last val_fraction of characters, from the line start before the cut;
- a val share outside [val_fraction / 2, 3 * val_fraction / 2] (a corpus small next to S), or an empty
  split: S shrinks towards val_fraction * characters / 2 (not below MIN_UNIT_CHARS), so that the bound
  above lands within the band;
- still no val unit (or no train unit) at the smallest S: the unit with the lowest (highest) draw is
  val (train), so a tiny corpus still gets both splits.
Deterministic (names, text and order decide), streaming (a few counters), the same on every pass.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from .corpus import Document, LongDocument, segment
from .errors import DataError

TRAIN, VAL = "train", "val"
UNIT_CHARS = 1 << 16  # the unit (and S) of a first pass: documents up to 64 KiB characters stay whole
MIN_UNIT_CHARS = 1 << 10  # the smallest unit a correction shrinks to: a few dozen lines
RULE = {"rule": "byte-quota", "unit_chars": UNIT_CHARS, "min_unit_chars": MIN_UNIT_CHARS}  # in the fingerprint

Labelled = tuple[str, str, str]  # (split, document name, text) of one unit


def draw(name: str) -> float:
    """A unit's split draw in [0, 1), from its name."""
    return zlib.crc32(name.encode("utf-8")) / 2**32


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass(frozen=True)
class SplitPlan:
    """How a pass splits the corpus (see the module docstring)."""

    val_fraction: float
    unit_chars: int = UNIT_CHARS
    single_cut: int | None = None  # one document: val from this character on (moved back to a line start)
    forced_val: int | None = None  # the index of the unit made val (no unit drew val)
    forced_train: int | None = None  # the index of the unit made train (every unit drew val)

    def corrected(self, seen: Splitter) -> SplitPlan | None:
        """The plan a pass that saw `seen` calls for; None when this one is final."""
        f, total, val = self.val_fraction, seen.total_bytes, seen.val_bytes
        if self.single_cut is not None:
            return None
        if seen.documents == 1:
            if seen.chars < 2:
                raise DataError("data.paths", f"corpus too small to split into train and val ({seen.chars} character)")
            return replace(self, single_cut=min(max(round(seen.chars * (1.0 - f)), 1), seen.chars - 1))
        if 0 < val < total and abs(val - f * total) <= f * total / 2:
            return None
        finer = max(MIN_UNIT_CHARS, min(self.unit_chars // 2, int(f * seen.chars / 2)))
        if finer < self.unit_chars:
            return replace(self, unit_chars=finer)
        if self.forced_val is None and self.forced_train is None:
            if val == 0:
                return replace(self, forced_val=seen.lowest[0])
            if val == total:
                return replace(self, forced_train=seen.highest[0])
        return None


class Splitter:
    """Labels the units of a document stream by `plan`, counting what the corrections need."""

    def __init__(self, plan: SplitPlan):
        self.plan = plan
        self.documents = self.units = self.chars = self.total_bytes = self.val_bytes = 0
        self.lowest, self.highest = (0, 2.0), (0, -1.0)  # (unit index, draw)

    def label(self, docs: Iterable[Document | LongDocument]) -> Iterator[Labelled]:
        for doc in docs:
            self.documents += 1
            texts = [doc.text] if isinstance(doc, Document) else doc.segments
            units = segment(texts, self.plan.unit_chars)
            yield from self._tail(doc.name, units) if self.plan.single_cut is not None else self._drawn(doc.name, units)

    def _drawn(self, name: str, units: Iterator[str]) -> Iterator[Labelled]:
        plan = self.plan
        for k, text in enumerate(units):
            u, index, size = draw(name if k == 0 else f"{name}#{k}"), self.units, utf8_len(text)
            if u < self.lowest[1]:
                self.lowest = (index, u)
            if u > self.highest[1]:
                self.highest = (index, u)
            owed = plan.val_fraction * self.total_bytes - self.val_bytes
            is_val = u < plan.val_fraction + owed / plan.unit_chars
            is_val = (is_val or index == plan.forced_val) and index != plan.forced_train
            yield self._count(VAL if is_val else TRAIN, name, text, size)

    def _tail(self, name: str, units: Iterator[str]) -> Iterator[Labelled]:
        """One document: train up to the line start before `single_cut` (the raw cut when no line starts
        before it in the same or the previous unit), val after."""
        cut, start, after_newline = self.plan.single_cut, 0, False
        for text in units:
            end = start + len(text)
            if end <= cut:
                yield self._count(TRAIN, name, text)
            elif start >= cut:
                yield self._count(VAL, name + "#val", text)
            else:
                at = text.rfind("\n", 0, cut - start) + 1
                if at == 0 and not (start > 0 and after_newline):
                    at = cut - start
                if at:
                    yield self._count(TRAIN, name, text[:at])
                yield self._count(VAL, name + "#val", text[at:])
            start, after_newline = end, text.endswith("\n")

    def _count(self, split: str, name: str, text: str, size: int | None = None) -> Labelled:
        size = utf8_len(text) if size is None else size
        self.units += 1
        self.chars += len(text)
        self.total_bytes += size
        self.val_bytes += size if split == VAL else 0
        return split, name, text
