"""Typed schemas of an experiment file, as OmegaConf structured-config dataclasses.

OmegaConf checks every merged value against these types (``train.steps=abc`` fails) and rejects
unknown keys with a did-you-mean. Ranges and cross-field rules live in ``validate.py``.

``model:`` is derived from ``components.TransformerConfig`` so the two never drift apart; its
component keys (``model.norm``, ...) are typed ``Any``, since each takes a name or a
``{name: ..., option: value}`` mapping (``specs.py``; checked in ``validate.py``).
``data:`` is the data layer's own ``DataSettings``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from omegaconf import MISSING

from components import TransformerConfig
from components.config import COMPONENT_FIELDS
from workbench.data.settings import DataSettings

SECTIONS = ("model", "data", "train")
TOP_LEVEL = ("name", "description", "defaults", "imports", "seeds", "baseline", "budget", "sizes", "eval",
             "equivalence_margin", "reference", "ladder", "sweep", "tune", "controls", "variants")

# Filled from the data and train sections, not written under model:.
MODEL_FROM_ELSEWHERE = {"vocab_size": "data.vocab_size", "max_seq_len": "train.seq_len"}
# Schema defaults that differ from TransformerConfig's: an unsized experiment is the tiny CPU model.
MODEL_DEFAULTS = {"dim": 128}

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed", "bf16-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp", "fsdp")


def _derived_schema(source: type, name: str, exclude=(), defaults: dict | None = None, untyped=()) -> type:
    """A dataclass with ``source``'s fields (minus ``exclude``), types resolved for OmegaConf;
    ``untyped`` fields become ``Any`` (OmegaConf has no ``str | dict``)."""
    hints = {**typing.get_type_hints(source), **{f: Any for f in untyped}}
    specs = []
    for f in dataclasses.fields(source):
        if f.name in exclude:
            continue
        if defaults and f.name in defaults:
            spec = field(default=defaults[f.name])
        elif f.default_factory is not dataclasses.MISSING:
            spec = field(default_factory=f.default_factory)
        else:
            spec = field(default=f.default)
        specs.append((f.name, hints[f.name], spec))
    schema = dataclasses.make_dataclass(name, specs)
    schema.__module__ = __name__
    schema.__doc__ = f"The model: section: {source.__name__}'s fields except {', '.join(exclude)}."
    return schema


ModelSchema = _derived_schema(TransformerConfig, "ModelSchema", exclude=tuple(MODEL_FROM_ELSEWHERE), defaults=MODEL_DEFAULTS,
                              untyped=tuple(COMPONENT_FIELDS))
DataSchema = DataSettings


@dataclass
class TrainSettings:
    """The train: section, typed: optimisation, precision, hardware, checkpoint and eval cadence.

    The class is its own OmegaConf schema (``TrainSchema``): a resolved Variant holds one, and
    ``as_dict()`` is what experiment.yaml, results.json and the run identity store.
    """

    steps: int = 200  # optimizer steps; the budget every variant shares
    batch_size: int = 32  # sequences per step (per device)
    seq_len: int = 128  # tokens per sequence; also the model's max_seq_len
    lr: float = 3e-3  # peak learning rate (AdamW)
    # the block matrices' (attention, FFN) lr relative to lr, before muP's 1/m_d; embeddings, norms, biases
    # and the LM head keep lr (docs/parametrization.md, "Two learning rates")
    hidden_lr_ratio: float = 1.0
    min_lr_ratio: float = 0.1  # cosine and wsd decay to lr * min_lr_ratio (config/schedule.py)
    warmup_steps: int = 20  # linear warmup; may exceed steps (the LR then never reaches its peak)
    schedule: str = "cosine"  # cosine | wsd (warm-up, stable, decay: one run serves every horizon of a steps sweep)
    cooldown: float = 0.2  # wsd: the final fraction of steps that decays the LR
    cooldown_shape: str = "1-sqrt"  # wsd: 1-sqrt (Hagele et al. 2024) | linear
    weight_decay: float = 0.1  # on matrices only, not norms/biases/embeddings
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.95  # AdamW's second-moment decay
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    precision: str = "auto"  # auto | 32 | bf16-mixed | 16-mixed | bf16-true
    compile: bool = False  # torch.compile; costs 16-34 s per model on CPU
    checkpoint_every: int = 50  # steps between checkpoints (resume granularity)
    eval_every: int = 50  # steps between validation losses
    eval_batches: int = 8  # validation batches per evaluation
    log_every: int = 10  # steps between logged training losses
    accelerator: str = "auto"  # auto | cpu | gpu | cuda | mps
    devices: Union[int, str] = "auto"  # auto, a count, -1 for all, or "0,1" indices
    strategy: str = "auto"  # auto | ddp | fsdp
    num_nodes: int = 1  # machines; one global step spans devices x num_nodes processes
    seed_stream: int = 0  # 0: weights drawn from the seed; k > 0: the k-th other draw, same data order (A/A controls)

    @classmethod
    def of(cls, train: TrainSettings | Mapping) -> TrainSettings:
        """``train`` as settings: a mapping of train keys (a stored config, or a test's few keys) gets
        the defaults for the keys it lacks; TypeError on a key that is not one."""
        return train if isinstance(train, cls) else cls(**train)

    def as_dict(self) -> dict:
        """``{"steps": 200, ...}`` in field order: the stored form (experiment.yaml, results.json)."""
        return dataclasses.asdict(self)

    @property
    def tokens_per_step(self) -> int:
        """Tokens one device trains per optimizer step."""
        return self.batch_size * self.seq_len


TrainSchema = TrainSettings  # the OmegaConf schema of train: is the settings class itself


@dataclass
class BudgetSchema:
    """The budget: section: what every variant holds equal. Exactly one key; it sets each variant's
    train.steps at load time (see ``budget.py``)."""

    steps: Optional[int] = None  # optimizer steps (the default: train.steps as written)
    tokens: Optional[float] = None  # training tokens per run
    flops: Optional[float] = None  # training FLOPs per run (tokens x FLOPs/token)
    tokens_per_param: Optional[float] = None  # Chinchilla: tokens = this x total parameters


@dataclass
class EvalSchema:
    """The eval: section: extra measurements after training."""

    # Val loss at each length: a number <= 16 is a multiple of train.seq_len, a larger one a token count.
    lengths: List[float] = field(default_factory=list)


@dataclass
class ReferenceSchema:
    """The reference: section: a published result the report checks this experiment's verdicts against."""

    source: str = MISSING  # paper, table, setting
    metric: str = ""  # what the values measure (lower is better), e.g. "log-perplexity at 65k steps"
    values: Dict[str, float] = field(default_factory=dict)  # variant -> published value
    claims: Dict[str, str] = field(default_factory=dict)  # variant -> better | worse | equivalent vs the baseline
    note: str = ""


@dataclass
class TuneSchema:
    """The tune: section: every variant over a grid of one key, compared at its own optimum (``tune.py``)."""

    key: str = "train.lr"  # a float key of model: or train:
    values: Optional[List[float]] = None  # the grid as written
    multipliers: Optional[List[float]] = None  # multiples of each variant's own value; neither: [0.25, 0.5, 1, 2, 4]
    seeds: int = 1  # tuning seeds (the experiment's first) per grid point
    extend: int = 2  # extension points per side while the optimum is on that edge
    at: str = "every"  # every size, or smallest: the grid at the smallest size, its optimum transferred (``transfer.py``)


@dataclass
class VariantSchema:
    """What one variant fully resolves to (and what a variant's overrides may name)."""

    model: ModelSchema = field(default_factory=ModelSchema)  # type: ignore[valid-type]
    data: DataSchema = field(default_factory=DataSchema)
    train: TrainSettings = field(default_factory=TrainSettings)


@dataclass
class ExperimentSchema:
    """An experiment file. ``defaults`` and ``variants`` are read before the typed merge."""

    name: str = MISSING  # names the run folder runs/<name>/
    description: str = ""
    defaults: List[str] = field(default_factory=list)  # preset files, relative to this file
    imports: List[str] = field(default_factory=list)  # modules whose @registry.register must run
    seeds: Any = field(default_factory=lambda: [0])  # a list of seeds, or {min: 2, max: 8}: add seeds while undecided
    equivalence_margin: Optional[float] = None  # nats; None: the report's default (0.01)
    reference: Optional[ReferenceSchema] = None
    baseline: Optional[str] = None  # None: the first variant
    budget: Optional[BudgetSchema] = None  # None: each variant trains train.steps
    sizes: List[Any] = field(default_factory=list)  # preset files or inline {name:, dim:, ...}: a scaling sweep
    sweep: Dict[str, Any] = field(default_factory=dict)  # one axis instead of sizes: {model.n_layers: [2, 4, 8]}
    tune: Optional[TuneSchema] = None  # a grid of one key per variant: each compared at its own optimum
    ladder: bool = False  # each variant adds one change to the one before: compare each with the previous
    controls: List[str] = field(default_factory=list)  # [aa]: the baseline against itself under a second seed stream
    eval: EvalSchema = field(default_factory=EvalSchema)
    variants: Dict[str, Any] = field(default_factory=dict)  # NAME -> partial {model:, data:, train:}
    model: ModelSchema = field(default_factory=ModelSchema)  # type: ignore[valid-type]
    data: DataSchema = field(default_factory=DataSchema)
    train: TrainSettings = field(default_factory=TrainSettings)


def keys_at(schema: type, parent: str) -> list[str] | None:
    """The keys a dotted ``parent`` of ``schema`` accepts (``keys_at(ExperimentSchema, "model")``)."""
    cls = schema
    for part in [p for p in parent.split(".") if p]:
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        hint = hints.get(part)
        # Optional[Schema] -> Schema
        hint = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), hint)
        if not dataclasses.is_dataclass(hint):
            return None
        cls = hint
    return sorted(f.name for f in dataclasses.fields(cls))


def shape_problem(schema: type, update: Any, prefix: str = "") -> tuple[str, str, Any] | None:
    """(dotted key, the shape it needs, the value) of the first value of ``update`` that is not the
    mapping or list ``schema`` declares there; OmegaConf's own errors for these name no key (or are a
    TypeError). Keys the schema does not know are left to the merge."""
    if not dataclasses.is_dataclass(schema) or not isinstance(update, Mapping):
        return None
    hints = typing.get_type_hints(schema)
    for key, value in update.items():
        hint = hints.get(key)
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if _optional(hint) else hint
        if value is None or hint is None or hint is Any:
            continue
        origin = typing.get_origin(hint)
        if (dataclasses.is_dataclass(hint) or origin is dict) and not isinstance(value, Mapping):
            return f"{prefix}{key}", "a mapping", value
        if origin is list and not isinstance(value, (list, tuple)):
            return f"{prefix}{key}", "a list", value
        found = shape_problem(hint, value, f"{prefix}{key}.")
        if found:
            return found
    return None


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def variant_defaults() -> dict:
    """Every variant config key with its schema default (what a key a stored config lacks counts as)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(VariantSchema))
