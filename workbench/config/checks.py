"""check_experiment: every value of every variant checked, pure: the first of the three steps of loading.

Types and key names were checked by the schema merge; here come ranges, choices, cross-field
rules, and component specs (after importing ``imports``: each name, then each option against the
component's signature and declared range, so a bad one is named as ``model.norm.eps``). Nothing here
reads a data file or asks what this machine has, and nothing is changed: files and derived values are
``resolve.py``'s, and what training needs of the machine (CUDA, flash-attn, bf16) is ``machine.py``'s,
so ``show`` describes on a laptop an experiment written for a GPU.
"""

from __future__ import annotations

import importlib
import math
import re
import sys

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from components import InvalidConfig, UnknownComponentError, registry
from components.config import COMPONENT_FIELDS
from components.contract import kind_contract
from components.registry import InvalidOption
from workbench.data.errors import DataError
from workbench.data.settings import DataSettings
from workbench.folder_safety import RunFolderError, check_variant_name

from .blame import Blame
from .budget import check_budget
from .errors import ConfigError, did_you_mean, display_path, from_omegaconf
from .experiment import Experiment
from .schedule import COOLDOWN_SHAPES, SCHEDULES, decay_start
from .schema import ACCELERATORS, MODEL_FROM_ELSEWHERE, PRECISIONS, STRATEGIES, VariantSchema, keys_at
from .sizes import SAFE_NAME, SAFE_NAME_RULE, SEP
from .specs import SPEC_FORM, ComponentSpec

RESERVED_NAMES = ("plots", "tokenizer")  # folders a run directory already uses
MIN_VOCAB_SIZE = 260  # 256 byte-fallback pieces + unk/bos/eos + at least one merge
MAX_SEED = 2**32 - 1
MAX_SEQUENTIAL_SEEDS = 64  # seeds: {min:, max:} trains seeds 0..max-1 at most
CLAIMS = ("better", "worse", "equivalent")  # reference.claims: a variant's published direction vs the baseline
FLASH_PRECISIONS = ("auto", "bf16-mixed", "16-mixed", "bf16-true")
FLASH_MAX_HEAD_DIM = 256


def check_experiment(exp: Experiment) -> None:
    """Raise ConfigError on the first invalid value; ``exp`` is left as it was. Imports the plugin
    modules of ``imports`` (their components are checked by name), reads no other file."""
    _check_top_level(exp)
    _import_modules(exp)
    for variant in exp.variants.values():
        _VariantCheck(exp, variant).run()


def outside_range(exp: Experiment) -> list[str]:
    """The grid extension points (``tune.extend``) whose value its key refuses (beta2 past 1): the grid ends at
    the key's range there, and the optimum is flagged on that edge instead."""
    out = []
    if exp.tune is None:
        return out
    _import_modules(exp)  # a model check may name a plugin's component
    for name, variant in exp.variants.items():
        if variant.point.step != 0:
            try:
                check = _VariantCheck(exp, variant)
                check.check_train() if exp.tune.key.startswith("train.") else check.check_model()
            except ConfigError:
                out.append(name)
    return out


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
        arch = variant.arch if variant.size is not None or variant.point is not None else name
        if not isinstance(arch, str) or not SAFE_NAME.match(arch) or arch in RESERVED_NAMES:
            why = f"'{arch}' is reserved for the run folder's own files" if arch in RESERVED_NAMES else f"invalid variant name {arch!r}: it names a run folder"
            raise ConfigError(str(exp.path), f"variants.{arch}", why, SAFE_NAME_RULE + f"; not {', '.join(RESERVED_NAMES)}")
        try:  # nor a file of the run folder's own (results.json, report.md, ...)
            check_variant_name(arch, "variants")
        except RunFolderError as exc:
            raise ConfigError(str(exp.path), f"variants.{arch}", str(exc).removeprefix("variants: "), SAFE_NAME_RULE) from None
        if variant.size is not None and (not SAFE_NAME.match(variant.size) or variant.cell != f"{arch}{SEP}{variant.size}"):
            raise ConfigError(str(exp.path), f"variants.{name}", f"invalid run group name {name!r}", f"<variant>{SEP}<size>, each {SAFE_NAME_RULE}")
        if (variant.point is None) != (exp.tune is None) or name != (exp.tune.point_name(variant.cell, variant.point.value)
                                                                     if variant.point else variant.cell):
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
    if exp.tune is not None and exp.tune.seeds > len(seeds):
        fail("tune.seeds", f"{exp.tune.seeds} tuning seeds, but the experiment has {len(seeds)} seed(s)",
             f"at most {len(seeds)}, or more seeds")
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


class _VariantCheck(Blame):
    """The pure checks of one variant; errors name the file and key that set the bad value."""

    def run(self) -> None:
        self.check_schema()
        self.check_train()
        self.check_devices()
        self.check_data()
        self.check_model()

    def check_schema(self) -> None:
        """Types and keys again, for Variants built by hand rather than loaded."""
        try:
            OmegaConf.merge(OmegaConf.structured(VariantSchema), self.variant.to_dict())
        except OmegaConfBaseException as exc:
            err = from_omegaconf(exc, None, "", lambda parent: keys_at(VariantSchema, parent))
            self.fail(err.key or "variants", err.problem, err.allowed)
        for section, values in self.variant.to_dict().items():
            missing = sorted(set(keys_at(VariantSchema, section) or ()) - set(values))
            if missing:
                self.fail(f"{section}.{missing[0]}", "missing")

    # -- helpers ---------------------------------------------------------------------------
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
        self.integer("train.steps", 1)
        for key in ("batch_size", "checkpoint_every", "eval_every", "eval_batches", "log_every", "num_nodes"):
            self.integer(f"train.{key}", 1)
        self.integer("train.seq_len", 2)
        self.integer("train.warmup_steps", 0)  # may exceed steps: the LR then never reaches its peak
        self.number("train.lr", lambda x: x > 0, "a number > 0")
        self.number("train.hidden_lr_ratio", lambda x: x > 0, "a number > 0 (1: one learning rate for every weight)")
        self.number("train.min_lr_ratio", lambda x: 0 <= x <= 1, "a number in [0, 1]")
        self.number("train.weight_decay", lambda x: x >= 0, "a number >= 0")
        self.number("train.grad_clip", lambda x: x >= 0, "a number >= 0 (0: no clipping)")
        for key in ("beta1", "beta2"):
            self.number(f"train.{key}", lambda x: 0 <= x < 1, "a number in [0, 1)")
        self.check_schedule()
        self.choice("train.precision", PRECISIONS)
        self.choice("train.accelerator", ACCELERATORS)
        self.choice("train.strategy", STRATEGIES)
        if not isinstance(self.train.compile, bool):
            self.fail("train.compile", f"invalid value {self.train.compile!r}", "true, false")
        devices = self.train.devices
        if not (devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool) and (devices >= 1 or devices == -1))
                or (isinstance(devices, str) and re.fullmatch(r"-1|\d+(,\d+)*,?", devices))):
            self.fail("train.devices", f"invalid value {devices!r}", "auto, a device count >= 1, -1 (all), or indices like '0,1'")

    def check_schedule(self) -> None:
        """``train.schedule`` and its cool-down: a WSD cool-down has at least one step and starts once the
        warm-up is over (so every horizon of a steps sweep shares one trajectory up to its decay start)."""
        schedule = self.choice("train.schedule", SCHEDULES)
        cooldown = self.number("train.cooldown", lambda x: 0 < x < 1, "a number in (0, 1): the fraction of train.steps that decays")
        self.choice("train.cooldown_shape", COOLDOWN_SHAPES)
        if schedule != "wsd":
            return
        steps, warmup = self.train.steps, self.train.warmup_steps
        start = decay_start(steps, cooldown)
        where = f"the cool-down starts at step {start} = round(train.steps {steps} x (1 - train.cooldown {cooldown:g}))"
        if start >= steps:
            self.fail("train.cooldown", f"{cooldown:g} of {steps} steps leaves the wsd cool-down no step ({where})",
                      f"train.cooldown >= {1 / steps:.3g} (one step of {steps}), or more train.steps", ("train.steps", "train.schedule"))
        if start < warmup:
            self.fail("train.warmup_steps", f"{warmup} warm-up steps outlast the stable phase of the wsd schedule ({where})",
                      f"train.warmup_steps <= {start}, or a shorter train.cooldown", ("train.steps", "train.cooldown", "train.schedule"))

    def check_devices(self) -> None:
        """Settings that contradict each other on any machine (a CPU run in fp16, FSDP on CPU); what
        this machine lacks is ``machine.py``'s to say, and ``run``'s to refuse."""
        accelerator, precision = self.train.accelerator, self.train.precision
        if precision == "16-mixed" and accelerator == "cpu":
            self.fail("train.precision", "'16-mixed' needs a GPU (on CPU Lightning would silently train in bf16-mixed instead)",
                      "auto, 32, bf16-mixed, bf16-true", ("train.accelerator",))
        if self.train.strategy == "fsdp" and accelerator in ("cpu", "mps"):
            self.fail("train.strategy", "'fsdp' needs CUDA GPUs (Lightning's FSDP does not run on CPU or MPS)",
                      "auto, ddp", ("train.accelerator",))

    def check_data(self) -> None:
        """The data settings' values; their files are resolved (and must exist) in ``resolve.py``."""
        try:
            DataSettings(**self.data).validate()
        except DataError as exc:
            self.fail(exc.key, exc.message)
        if self.data["source"] != "bin" and self.data["tokenizer"] is None:  # a trained tokenizer's size
            self.integer("data.vocab_size", MIN_VOCAB_SIZE, allowed=f"an integer >= {MIN_VOCAB_SIZE} (256 byte pieces + specials)")

    def check_model(self) -> None:
        """Each component spec, then the model's config as a whole; whether it builds (and within the
        size bound) is checked once its vocabulary is known (``resolve.py``)."""
        for field, kind in COMPONENT_FIELDS.items():
            self.check_spec(f"model.{field}", kind)
        vocab = None if self.data["tokenizer"] is None else MIN_VOCAB_SIZE  # a given tokenizer's: resolved later
        try:
            config = self.variant.transformer_config(vocab)
        except InvalidConfig as exc:
            key = MODEL_FROM_ELSEWHERE.get(exc.field, f"model.{exc.field}")
            derived = f" (head_dim = dim / n_heads = {self.model['dim']} / {self.model['n_heads']})" if exc.field == "head_dim" and self.model["head_dim"] is None else ""
            self.fail(key, f"invalid value {exc.value!r}: {exc.reason}{derived}")
        except TypeError as exc:
            self.fail("model", str(exc))
        if config.component("attention")[0] == "flash":
            self.check_flash(config.head_dim)

    def check_spec(self, key: str, kind: str) -> None:
        """A component spec: its form, its name, then each option on its own, so the error names
        ``model.norm.eps`` rather than the whole spec."""
        value = self.value(key)
        available = f"{SPEC_FORM}; {kind}s: {', '.join(registry.available(kind))}"
        spec = ComponentSpec.parse(value)
        if isinstance(value, dict) and not isinstance(spec.name, str):
            self.fail(f"{key}.name" if "name" in value else key, f"{kind} spec {value!r} has no component name", available)
        if not isinstance(spec.name, str):
            self.fail(key, f"invalid value {value!r}", available)
        try:
            registry.validate(kind, spec.name)
        except UnknownComponentError as exc:
            self.fail(f"{key}.name" if isinstance(value, dict) else key, f"{exc}; {plugins_loaded(self.exp.imports)}")
        sizes = kind_contract(kind).sizes
        for option, option_value in spec.options.items():
            try:
                registry.validate(kind, {"name": spec.name, option: option_value}, sizes)
            except InvalidOption as exc:
                self.fail(f"{key}.{option}", str(exc))

    def check_flash(self, head_dim: int) -> None:
        """What flash attention asks of the config on any machine; whether this one has CUDA and
        flash-attn is ``machine.py``'s question."""
        precision, accelerator = self.train.precision, self.train.accelerator
        others = ", ".join(n for n in registry.available("attention") if n != "flash")
        if head_dim > FLASH_MAX_HEAD_DIM:
            self.fail("model.attention", f"flash attention supports head_dim <= {FLASH_MAX_HEAD_DIM}, this model has {head_dim}", others)
        if accelerator == "cpu":
            self.fail("model.attention", "flash attention runs on CUDA only, but train.accelerator is 'cpu'", others)
        if precision not in FLASH_PRECISIONS:
            self.fail("train.precision", f"'{precision}' but model.attention is 'flash', which runs in fp16/bf16 only",
                      ", ".join(FLASH_PRECISIONS), ("model.attention",))
