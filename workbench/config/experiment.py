"""Experiment and Variant: a loaded experiment, every variant fully resolved to plain dicts."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from components import TransformerConfig

# Dotted key -> (source, key as written there): the file (absolute path) or "command line" that
# set the value last, so errors point at the line to edit.
Origins = dict[str, tuple[str, str]]


@dataclass
class Variant:
    """One architecture of an experiment: resolved ``model``/``data``/``train`` mappings."""

    name: str
    model: dict
    data: dict
    train: dict
    origins: Origins = field(default_factory=dict, repr=False, compare=False)

    def transformer_config(self, vocab_size: int | None = None) -> TransformerConfig:
        """The model's config; ``vocab_size`` defaults to data.vocab_size (pass the tokenizer's actual size)."""
        vocab = self.data["vocab_size"] if vocab_size is None else vocab_size
        return TransformerConfig(vocab_size=vocab, max_seq_len=self.train["seq_len"], **self.model)

    def to_dict(self) -> dict:
        """``{"model": ..., "data": ..., "train": ...}``, a deep copy."""
        return copy.deepcopy({"model": self.model, "data": self.data, "train": self.train})


@dataclass
class Experiment:
    """A validated experiment: what ``workbench run`` trains, variant by variant, seed by seed."""

    name: str
    description: str
    path: Path  # the experiment file
    seeds: list[int]
    baseline: str
    imports: list[str]
    variants: dict[str, Variant]  # in file order
    origins: Origins = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        """Everything resolved, for ``experiment.yaml``; loading that file gives the same experiment."""
        return {
            "name": self.name,
            "description": self.description,
            "seeds": list(self.seeds),
            "baseline": self.baseline,
            "imports": list(self.imports),
            "variants": {name: v.to_dict() for name, v in self.variants.items()},
        }
