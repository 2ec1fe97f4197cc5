"""Experiment and Variant: a loaded experiment, every variant fully resolved (``model``/``data`` plain
dicts, ``train`` typed ``TrainSettings``).

With ``sizes:``, every (variant, size) pair is one Variant named ``<variant>@<size>`` (its ``arch``
and ``size`` say which); without, ``arch`` is the variant's own name and ``size`` None. A control
(``controls.py``) is a Variant with ``control`` set, an arch of its own (``rmsnorm~aa``) that is not a
variant of the design.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components import TransformerConfig, TransformerLM

from ..run_groups import cell_name
from .errors import ConfigError
from .model_size import counting_config, on_meta
from .schema import TrainSettings
from .tune import GridPoint, Tune

# Dotted key -> (source, key as written there): the file (absolute path) or "command line" that
# set the value last, so errors point at the line to edit.
Origins = dict[str, tuple[str, str]]


@dataclass
class Variant:
    """One architecture of an experiment: resolved ``model``/``data`` mappings and ``train`` settings."""

    name: str
    model: dict
    data: dict
    train: TrainSettings
    origins: Origins = field(default_factory=dict, repr=False, compare=False)
    arch: str | None = None  # the variant of the experiment file; None: = name
    size: str | None = None  # the size of a scaling sweep, or None
    eval_lengths: list[int] = field(default_factory=list)  # eval.lengths in tokens, set by resolution
    point: GridPoint | None = None  # where it sits on its cell's tuning grid; None: not tuned
    control: str | None = None  # "aa": the baseline's A/A twin (controls.py); None: a variant of the design

    def __post_init__(self):
        if self.arch is None:
            self.arch = self.name
        if isinstance(self.train, Mapping):  # a stored config's train section
            self.train = TrainSettings.of(self.train)

    @property
    def cell(self) -> str:
        """The variant at its size (``arch`` or ``arch@size``): what a verdict compares, at one tuned value."""
        return cell_name(self.arch, self.size)

    def at(self, point: GridPoint, name: str) -> Variant:
        """This variant as the run group ``name`` at ``point`` of its grid (the tuned key set to its value)."""
        section, _, leaf = point.key.partition(".")
        if section == "train":
            changed = {"train": dataclasses.replace(self.train, **{leaf: point.value})}
        else:
            changed = {"model": {**self.model, leaf: point.value}}
        return dataclasses.replace(self, name=name, point=point, **changed)

    def untuned(self) -> Variant:
        """The variant at its own configured value of the tuned key (itself when not tuned)."""
        if self.point is None:
            return self
        base = dataclasses.replace(self.point, value=self.point.base)
        return dataclasses.replace(self.at(base, self.cell), point=None)

    def transformer_config(self, vocab_size: int | None = None) -> TransformerConfig:
        """The model's config; ``vocab_size`` defaults to data.vocab_size (pass the tokenizer's actual size)."""
        vocab = self.data["vocab_size"] if vocab_size is None else vocab_size
        return TransformerConfig(vocab_size=vocab, max_seq_len=self.train.seq_len, **self.model)

    def meta_model(self, vocab_size: int | None = None) -> TransformerLM:
        """The model on the meta device (shapes only: no memory, no time), for counting parameters and
        FLOPs on any machine: a kernel this one cannot run is counted as one that it can (``counting_config``)."""
        with on_meta():
            return TransformerLM(counting_config(self.transformer_config(vocab_size)))

    def sizes(self, vocab_size: int | None = None) -> dict[str, int]:
        """Parameters (all, non-embedding) and FLOPs/token, counted on the meta device: what ``show`` prints and
        results.json records per variant."""
        model = self.meta_model(vocab_size)
        return {"params": model.num_params(), "non_embedding_params": model.num_params(non_embedding=True),
                "flops_per_token": model.flops_per_token(self.train.seq_len)}

    def to_dict(self) -> dict:
        """``{"model": ..., "data": ..., "train": ...}``, plain and a deep copy: the stored form."""
        return copy.deepcopy({"model": self.model, "data": self.data, "train": self.train.as_dict()})


@dataclass
class Experiment:
    """A validated experiment: what ``workbench run`` trains, variant by variant, seed by seed."""

    name: str
    description: str
    path: Path  # the experiment file
    seeds: list[int]  # every seed that may train, in order: the first seed_policy["min"] always do
    baseline: str
    imports: list[str]
    variants: dict[str, Variant]  # in file order; with sizes, variant-major: a@s1, a@s2, b@s1, ...
    origins: Origins = field(default_factory=dict, repr=False, compare=False)
    budget: dict | None = None  # the budget: spec as written, e.g. {"flops": 1e13}; None: train.steps
    eval: dict = field(default_factory=lambda: {"lengths": []})
    sizes: list[str] = field(default_factory=list)  # size names in order, when the experiment sweeps sizes
    seed_policy: dict = field(default_factory=dict)  # {"min": n, "max": n}; a seed list is min = max = its length
    equivalence_margin: float | None = None  # nats; None: the report's default
    reference: dict | None = None  # a published result to check the verdicts against
    ladder: bool = False  # each variant adds one change to the one before: compared with the previous one
    tune: Tune | None = None  # a grid per variant (``tune.py``): variants then holds one run group per grid point
    controls: list[str] = field(default_factory=list)  # controls: [aa]; their run groups follow the variants

    @property
    def sequential(self) -> bool:
        """True when seeds are added while comparisons stay undecided (``seeds: {min:, max:}``)."""
        return self.seed_policy["min"] < self.seed_policy["max"]

    @property
    def archs(self) -> list[str]:
        """The variants of the experiment file (baseline names one of these), in order; controls are not."""
        return list(dict.fromkeys(v.arch for v in self.variants.values() if v.control is None))

    def baseline_cell(self, name: str) -> str:
        """The baseline at the size of run group ``name`` (``baseline`` or ``baseline@size``)."""
        size = self.variants[name].size
        return cell_name(self.baseline, size)

    def select(self, names: list[str] | None) -> list[str]:
        """Run groups for ``--variant`` names: a run group, or a variant with all its sizes."""
        if not names:
            return list(self.variants)
        chosen: list[str] = []
        for name in names:
            matches = [n for n, v in self.variants.items() if name in (n, v.arch, v.cell)]
            if not matches:
                raise ConfigError(self.path, "--variant", f"unknown variant '{name}'", ", ".join(dict.fromkeys(self.archs + list(self.variants))))
            chosen += matches
        return [n for n in self.variants if n in chosen]

    def to_dict(self) -> dict:
        """Everything resolved, for ``experiment.yaml``; loading that file gives the same experiment
        (sizes are expanded into ``<variant>@<size>`` variants; budgets give the same steps again; the
        controls are listed by name and added again on loading, as a tuned variant's grid is)."""
        design = [v for v in self.variants.values() if v.control is None]
        return {
            "name": self.name,
            "description": self.description,
            "seeds": dict(self.seed_policy) if self.sequential else list(self.seeds),
            "baseline": self.baseline,
            "imports": list(self.imports),
            "budget": dict(self.budget) if self.budget is not None else None,
            "eval": copy.deepcopy(self.eval),
            "equivalence_margin": self.equivalence_margin,
            "reference": copy.deepcopy(self.reference),
            "ladder": self.ladder,
            **({"tune": self.tune.as_dict()} if self.tune else {}),
            **({"controls": list(self.controls)} if self.controls else {}),
            # a tuned experiment lists each variant at its own value: loading the file expands the grids again
            "variants": {v.name: v.to_dict() for v in dict((v.cell, v.untuned()) for v in design).values()}
            if self.tune else {v.name: v.to_dict() for v in design},
        }

    def tuning_seeds(self) -> list[int]:
        """The seeds every grid point trains (the first ``tune.seeds``); [] when not tuned."""
        return self.seeds[:self.tune.seeds] if self.tune else []
