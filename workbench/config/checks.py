"""validate_experiment: every value of every variant checked before any training starts.

Types and key names were checked by the schema merge; here come ranges, choices, cross-field
rules, component specs (after importing ``imports``: each name, then each option against the
component's signature and declared range, so a bad one is named as ``model.norm.eps``), data files,
the hardware the config asks for, the size bound (``model_size``), and finally each model built on the
meta device, so nothing fails an hour into a run.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import math
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from components import InvalidConfig, TransformerLM, UnknownComponentError, registry
from components.attention import flash_unavailable_reason
from components.config import COMPONENT_FIELDS
from components.contract import kind_contract
from components.registry import InvalidOption
from workbench.data.errors import DataError
from workbench.data.settings import DataSettings
from workbench.data.tokenizer import load_tokenizer
from workbench.folder_safety import RunFolderError, check_variant_name

from .errors import COMMAND_LINE, ConfigError, did_you_mean, display_path, from_omegaconf
from .experiment import Experiment, Variant
from .budget import apply_budget, check_budget
from .lengths import resolve_lengths
from .model_size import size_problem
from .schema import ACCELERATORS, MODEL_FROM_ELSEWHERE, PRECISIONS, SECTIONS, STRATEGIES, VariantSchema, keys_at
from .sizes import SAFE_NAME, SAFE_NAME_RULE, SEP
from .specs import SPEC_FORM, canonical, spec_name

RESERVED_NAMES = ("plots", "tokenizer")  # folders a run directory already uses
MIN_VOCAB_SIZE = 260  # 256 byte-fallback pieces + unk/bos/eos + at least one merge
MAX_SEED = 2**32 - 1
MAX_SEQUENTIAL_SEEDS = 64  # seeds: {min:, max:} trains seeds 0..max-1 at most
CLAIMS = ("better", "worse", "equivalent")  # reference.claims: a variant's published direction vs the baseline
FLASH_PRECISIONS = ("auto", "bf16-mixed", "16-mixed", "bf16-true")
FLASH_MAX_HEAD_DIM = 256


def validate_experiment(exp: Experiment) -> None:
    """Raise ConfigError on the first problem; rewrite relative ``data.paths`` as absolute paths,
    resolve ``eval.lengths`` into tokens and ``budget:`` into every variant's train.steps."""
    _check_top_level(exp)
    _import_modules(exp)
    built: set[str] = set()
    for variant in exp.variants.values():
        _VariantCheck(exp, variant).run(built)
    resolve_lengths(exp)
    apply_budget(exp)


def _top_origin(exp: Experiment, key: str) -> tuple[str, str]:
    """Where ``key`` was set last: the key itself, or one of its own keys (``seeds.max=8`` for seeds)."""
    found = [o for k, o in exp.origins.items() if k == key or k.startswith(key + ".")]
    return (found[-1][0], key) if found else (str(exp.path), key)


def _check_top_level(exp: Experiment) -> None:
    def fail(key: str, problem: str, allowed: str | None = None):
        raise ConfigError(*_top_origin(exp, key), problem, allowed)

    if not isinstance(exp.name, str) or not SAFE_NAME.match(exp.name):
        fail("name", f"invalid name {exp.name!r}: it names the run folder", SAFE_NAME_RULE)
    if not exp.variants:
        fail("variants", "no variants")
    for name, variant in exp.variants.items():
        arch = variant.arch if variant.size is not None else name
        if not isinstance(arch, str) or not SAFE_NAME.match(arch) or arch in RESERVED_NAMES:
            why = f"'{arch}' is reserved for the run folder's own files" if arch in RESERVED_NAMES else f"invalid variant name {arch!r}: it names a run folder"
            raise ConfigError(str(exp.path), f"variants.{arch}", why, SAFE_NAME_RULE + f"; not {', '.join(RESERVED_NAMES)}")
        try:  # nor a file of the run folder's own (results.json, report.md, ...)
            check_variant_name(arch, "variants")
        except RunFolderError as exc:
            raise ConfigError(str(exp.path), f"variants.{arch}", str(exc).removeprefix("variants: "), SAFE_NAME_RULE) from None
        if variant.size is not None and (not SAFE_NAME.match(variant.size) or name != f"{arch}{SEP}{variant.size}"):
            raise ConfigError(str(exp.path), f"variants.{name}", f"invalid run group name {name!r}", f"<variant>{SEP}<size>, each {SAFE_NAME_RULE}")
    if len({v.size is None for v in exp.variants.values()}) > 1:
        fail("variants", f"mixes <variant>{SEP}<size> names with plain ones: every variant needs a size, or none")
    seeds = exp.seeds
    if not isinstance(seeds, list) or not seeds:
        fail("seeds", f"invalid value {seeds!r}: at least one seed is needed", "a non-empty list of distinct integers, e.g. [0, 1]")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            fail("seeds", f"invalid seed {seed!r}", f"integers in [0, {MAX_SEED}]")
    if len(set(seeds)) != len(seeds):
        fail("seeds", f"repeated seed in {seeds!r}: each seed would train the same run twice", "distinct integers")
    low, high = exp.seed_policy["min"], exp.seed_policy["max"]
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (low, high)) or not 1 <= low <= high <= MAX_SEQUENTIAL_SEEDS:
        fail("seeds", f"invalid policy {{min: {low!r}, max: {high!r}}}", f"integers 1 <= min <= max <= {MAX_SEQUENTIAL_SEEDS}")
    if exp.baseline not in exp.archs:
        fail("baseline", f"'{exp.baseline}' is not a variant", ", ".join(exp.archs))
    margin = exp.equivalence_margin
    if margin is not None and not (math.isfinite(margin) and margin > 0):
        fail("equivalence_margin", f"invalid value {margin!r}", "a positive number of nats, e.g. 0.01")
    _check_reference(exp, fail)
    if not isinstance(exp.imports, list) or not all(isinstance(m, str) and m for m in exp.imports):
        fail("imports", f"invalid value {exp.imports!r}", "a list of importable module names")
    check_budget(exp)


def _check_reference(exp: Experiment, fail) -> None:
    ref = exp.reference
    if ref is None:
        return
    for key in ("values", "claims"):
        for name, value in ref[key].items():
            if name not in exp.archs:
                fail(f"reference.{key}.{name}", f"'{name}' is not a variant{did_you_mean(name, exp.archs)}", ", ".join(exp.archs))
            if key == "claims" and value not in CLAIMS:
                fail(f"reference.claims.{name}", f"invalid claim {value!r}", ", ".join(CLAIMS))
            if key == "values" and not math.isfinite(value):
                fail(f"reference.values.{name}", f"invalid value {value!r}", "a finite number, the published result")


def plugins_loaded(imports: list[str]) -> str:
    """Where components other than the built-in ones came from, for an unknown-name error: a plugin
    module missing from ``imports:`` (or a package not installed) is the usual cause."""
    from importlib import metadata

    from components.registry import ENTRY_POINT_GROUP

    points = [f"{ep.name} ({ep.value})" for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    return (f"plugin modules loaded: imports: [{', '.join(imports)}], entry points ({ENTRY_POINT_GROUP}): "
            f"{', '.join(points) or 'none'}; a component from a plugin needs its module under imports: "
            f"or its package installed")


def _import_modules(exp: Experiment) -> None:
    """Import ``imports`` (the experiment's folder first on sys.path) so their components register."""
    folder = str(exp.path.parent)
    for module in exp.imports:
        added = folder not in sys.path
        if added:
            sys.path.insert(0, folder)
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or anything the module raises while importing
            raise ConfigError(*_top_origin(exp, "imports"), f"cannot import '{module}': {type(exc).__name__}: {exc}",
                              f"modules on sys.path or in {display_path(folder)}") from None
        finally:
            if added:
                sys.path.remove(folder)


def _build_problem(config) -> str | None:
    """Why ``TransformerLM(config)`` fails, or None; built on the meta device (shapes only: no memory, no time)."""
    try:
        with torch.device("meta"):
            TransformerLM(config)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _culprit_option(config) -> str | None:
    """The component option a failed build is due to (``model.ffn.top_k``): the first whose removal
    lets the model build; None when no single option is to blame."""
    for field in COMPONENT_FIELDS:
        spec = getattr(config, field)
        if not isinstance(spec, dict):
            continue
        for option in [k for k in spec if k != "name"]:
            trial = canonical({k: v for k, v in spec.items() if k != option})
            try:
                candidate = dataclasses.replace(config, **{field: trial})
            except InvalidConfig:
                continue
            if _build_problem(candidate) is None:
                return f"model.{field}.{option}"
    return None


def _lookup(variant: Variant, key: str):
    """The value at a dotted key of a variant (``model.norm.eps`` inside a spec); None where absent."""
    section, _, rest = key.partition(".")
    value = getattr(variant, section)
    for part in rest.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class _VariantCheck:
    """The checks of one variant; errors name the file and key that set the bad value."""

    def __init__(self, exp: Experiment, variant: Variant):
        self.exp, self.variant = exp, variant
        self.train, self.data, self.model = variant.train, variant.data, variant.model

    def fail(self, key: str, problem: str, allowed: str | None = None, related: tuple[str, ...] = ()) -> NoReturn:
        """Raise for ``key``; ``related`` keys took part in the rule (they decide whether to name the variant)."""
        source, written = self.origin(key)
        if not written.startswith("variants.") and not all(self.shared(k) for k in (key,) + related):
            problem += f" [variant '{self.variant.name}']"
        raise ConfigError(source, written, problem, allowed)

    def origin(self, key: str) -> tuple[str, str]:
        """(file, key as written there) that set ``key``; a spec's name may have been written as
        ``model.norm: NAME`` or as ``model.norm.name``, and a whole spec by its name's origin."""
        origins = self.variant.origins
        if key in origins:
            return origins[key]
        if key.endswith(".name") and key.removesuffix(".name") in origins:
            return origins[key.removesuffix(".name")]
        if key + ".name" in origins:
            source, written = origins[key + ".name"]
            return source, written.removesuffix(".name")
        return str(self.exp.path), key

    def run(self, built: set[str]) -> None:
        self.check_schema()
        self.check_train()
        self.check_hardware()
        self.check_data()
        self.check_model(built)

    def check_schema(self) -> None:
        """Types and keys again, for Variants built by hand rather than loaded."""
        try:
            OmegaConf.merge(OmegaConf.structured(VariantSchema), self.variant.to_dict())
        except OmegaConfBaseException as exc:
            err = from_omegaconf(exc, None, "", lambda parent: keys_at(VariantSchema, parent))
            self.fail(err.key or "variants", err.problem, err.allowed)
        for section in SECTIONS:
            missing = sorted(set(keys_at(VariantSchema, section) or ()) - set(getattr(self.variant, section)))
            if missing:
                self.fail(f"{section}.{missing[0]}", "missing")

    # -- helpers ---------------------------------------------------------------------------
    def shared(self, key: str) -> bool:
        """Whether every variant has the same value at ``key`` (then naming one is noise)."""
        section = key.partition(".")[0]
        values = [_lookup(v, key) for v in self.exp.variants.values()] if section in SECTIONS else [None]
        return section in SECTIONS and all(repr(value) == repr(values[0]) for value in values)

    def value(self, key: str):
        return _lookup(self.variant, key)

    def integer(self, key: str, low: int, high: int | None = None, allowed: str | None = None, related=()) -> int:
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            self.fail(key, f"invalid value {value!r}", allowed or (f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"), related)
        return value

    def number(self, key: str, ok, allowed: str) -> float:
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
            self.fail(key, f"invalid value {value!r}", allowed)
        return value

    def choice(self, key: str, options) -> str:
        value = self.value(key)
        if value not in options:
            self.fail(key, f"invalid value {value!r}", ", ".join(options))
        return value

    # -- sections --------------------------------------------------------------------------
    def check_train(self) -> None:
        steps = self.integer("train.steps", 1)
        for key in ("batch_size", "checkpoint_every", "eval_every", "eval_batches", "log_every", "num_nodes"):
            self.integer(f"train.{key}", 1)
        self.integer("train.seq_len", 2)
        self.integer("train.warmup_steps", 0)  # may exceed steps: the LR then never reaches its peak
        self.number("train.lr", lambda x: x > 0, "a number > 0")
        self.number("train.min_lr_ratio", lambda x: 0 <= x <= 1, "a number in [0, 1]")
        self.number("train.weight_decay", lambda x: x >= 0, "a number >= 0")
        self.number("train.grad_clip", lambda x: x >= 0, "a number >= 0 (0: no clipping)")
        for key in ("beta1", "beta2"):
            self.number(f"train.{key}", lambda x: 0 <= x < 1, "a number in [0, 1)")
        self.choice("train.precision", PRECISIONS)
        self.choice("train.accelerator", ACCELERATORS)
        self.choice("train.strategy", STRATEGIES)
        if not isinstance(self.train["compile"], bool):
            self.fail("train.compile", f"invalid value {self.train['compile']!r}", "true, false")
        devices = self.train["devices"]
        if not (devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool) and (devices >= 1 or devices == -1))
                or (isinstance(devices, str) and re.fullmatch(r"-1|\d+(,\d+)*,?", devices))):
            self.fail("train.devices", f"invalid value {devices!r}", "auto, a device count >= 1, -1 (all), or indices like '0,1'")

    def check_hardware(self) -> None:
        """Refuse a config this machine cannot run as written, rather than let Lightning swap it."""
        accelerator, precision = self.train["accelerator"], self.train["precision"]
        cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
        if accelerator in ("gpu", "cuda") and not cuda:
            self.fail("train.accelerator", f"'{accelerator}' but no CUDA GPU is visible on this machine", "auto, cpu")
        if accelerator == "mps" and not mps:
            self.fail("train.accelerator", "'mps' but Apple's MPS backend is not available here", "auto, cpu")
        on_cpu = accelerator == "cpu" or (accelerator == "auto" and not cuda and not mps)
        if precision == "16-mixed" and on_cpu:
            self.fail("train.precision", "'16-mixed' needs a GPU (on CPU Lightning would silently train in bf16-mixed instead)",
                      "auto, 32, bf16-mixed, bf16-true", ("train.accelerator",))
        if self.train["strategy"] == "fsdp" and (on_cpu or accelerator == "mps" or (accelerator == "auto" and not cuda)):
            self.fail("train.strategy", "'fsdp' needs CUDA GPUs (Lightning's FSDP does not run on CPU or MPS)",
                      "auto, ddp", ("train.accelerator",))

    def check_data(self) -> None:
        try:
            settings = DataSettings(**self.data)
            settings.validate()
            settings.check_cache_root(self.exp.path.parent)  # where `prepare` puts it
        except DataError as exc:
            self.fail(exc.key, exc.message)
        if self.data["source"] != "bin" and self.data["tokenizer"] is None:  # a trained tokenizer's size
            self.integer("data.vocab_size", MIN_VOCAB_SIZE, allowed=f"an integer >= {MIN_VOCAB_SIZE} (256 byte pieces + specials)")
        if self.data["source"] in ("files", "bin"):
            self.data["paths"] = [self.resolve_path(p) for p in self.data["paths"]]
        if self.data["tokenizer"] is not None:
            self.data["tokenizer"] = self.resolve_path(self.data["tokenizer"], "data.tokenizer")
            try:  # the model's vocabulary is the given tokenizer's: resolved here, so show, budgets and runs agree
                self.data["vocab_size"] = load_tokenizer(Path(self.data["tokenizer"])).vocab_size
            except DataError as exc:
                self.fail(exc.key, exc.message)

    def resolve_path(self, path: str, key: str = "data.paths") -> str:
        """An absolute path (or glob) that exists: relative ones are tried against the folder of the
        file that set ``key``, the experiment's folder, then the working directory."""
        source, _ = self.variant.origins.get(key, (str(self.exp.path), key))
        bases = [Path.cwd() if source == COMMAND_LINE else Path(source).parent, self.exp.path.parent, Path.cwd()]
        bases = list(dict.fromkeys(b.resolve() for b in bases))
        given = Path(path).expanduser()
        for candidate in [given] if given.is_absolute() else [b / given for b in bases]:
            if glob.has_magic(str(candidate)):
                if any(os.path.isfile(m) for m in glob.iglob(str(candidate), recursive=True)):
                    return os.path.normpath(candidate)
            elif candidate.is_dir():
                self.fail(key, f"'{path}' is a directory", f"text files, or a glob such as '{path.rstrip('/')}/**/*.txt'"
                          if key == "data.paths" else "a sentencepiece .model file or a tokenizer.json")
            elif candidate.is_file():
                return str(candidate.resolve())
        where = "" if given.is_absolute() else f" (looked in {', '.join(str(b) for b in bases)})"
        self.fail(key, f"'{path}' matches no file{where}", "existing text files or globs" if key == "data.paths" else
                  "an existing sentencepiece .model file or tokenizer.json")

    def check_model(self, built: set[str]) -> None:
        for field, kind in COMPONENT_FIELDS.items():
            self.check_spec(f"model.{field}", kind)
        try:
            config = self.variant.transformer_config()
        except InvalidConfig as exc:
            key = MODEL_FROM_ELSEWHERE.get(exc.field, f"model.{exc.field}")
            derived = f" (head_dim = dim / n_heads = {self.model['dim']} / {self.model['n_heads']})" if exc.field == "head_dim" and self.model["head_dim"] is None else ""
            self.fail(key, f"invalid value {exc.value!r}: {exc.reason}{derived}")
        except TypeError as exc:
            self.fail("model", str(exc))
        if spec_name(config.attention) == "flash":
            self.check_flash(config.head_dim)
        fingerprint = repr(sorted(config.to_dict().items()))
        if fingerprint in built:
            return
        too_big = size_problem(config)  # before the full build, which a huge model would take minutes for
        if too_big:
            self.fail(*too_big)
        problem = _build_problem(config)
        if problem:
            self.fail(_culprit_option(config) or "model", f"cannot build the model: {problem}")
        built.add(fingerprint)

    def check_spec(self, key: str, kind: str) -> None:
        """A component spec: its form, its name, then each option on its own, so the error names
        ``model.norm.eps`` rather than the whole spec."""
        spec = self.value(key)
        if isinstance(spec, dict):
            if not isinstance(spec.get("name"), str):
                self.fail(f"{key}.name" if "name" in spec else key,
                          f"{kind} spec {spec!r} has no component name", f"{SPEC_FORM}; {kind}s: {', '.join(registry.available(kind))}")
            name, options = spec["name"], {k: v for k, v in spec.items() if k != "name"}
        elif isinstance(spec, str):
            name, options = spec, {}
        else:
            self.fail(key, f"invalid value {spec!r}", f"{SPEC_FORM}; {kind}s: {', '.join(registry.available(kind))}")
        try:
            registry.validate(kind, name)
        except UnknownComponentError as exc:
            self.fail(f"{key}.name" if isinstance(spec, dict) else key, f"{exc}; {plugins_loaded(self.exp.imports)}")
        sizes = kind_contract(kind).sizes
        for option, value in options.items():
            try:
                registry.validate(kind, {"name": name, option: value}, sizes)
            except InvalidOption as exc:
                self.fail(f"{key}.{option}", str(exc))

    def check_flash(self, head_size: int) -> None:
        precision, accelerator = self.train["precision"], self.train["accelerator"]
        others = ", ".join(n for n in registry.available("attention") if n != "flash")
        if head_size > FLASH_MAX_HEAD_DIM:
            self.fail("model.attention", f"flash attention supports head_dim <= {FLASH_MAX_HEAD_DIM}, this model has {head_size}", others)
        if accelerator == "cpu":
            self.fail("model.attention", "flash attention runs on CUDA only, but train.accelerator is 'cpu'", others)
        reason = flash_unavailable_reason()
        if reason:
            self.fail("model.attention", reason, others)
        if precision not in FLASH_PRECISIONS:
            self.fail("train.precision", f"'{precision}' but model.attention is 'flash', which runs in fp16/bf16 only",
                      ", ".join(FLASH_PRECISIONS), ("model.attention",))
        if precision == "auto" and not torch.cuda.is_bf16_supported():
            self.fail("train.precision", "'auto' resolves to 32 on this GPU (no bf16), which flash attention cannot run", "16-mixed")
