"""resolve_experiment: the checked experiment with what follows from files and from the model filled
in, the second of the three steps of loading (after ``checks.py``, before ``machine.py``).

Per variant: ``data.paths`` and ``data.tokenizer`` as absolute paths that exist (relative ones against
the file that set them), the vocabulary of a given tokenizer, an unset μP / CompleteP base of a sized
variant (``base_shape.py``), the model built on the meta device (within the size bound, ``model_size``); then
``tune: {at: smallest}``'s transfer points (``transfer.py``), ``budget:`` into train.steps (``budget.py``) and
``eval.lengths`` into tokens (``lengths.py``). The result is a new Experiment; the one given is left
as it was. Nothing here asks what this machine has beyond its files.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

from components import InvalidConfig, TransformerLM
from components.config import COMPONENT_FIELDS
from workbench.data.errors import DataError
from workbench.data.settings import DataSettings
from workbench.data.tokenizer import load_tokenizer

from .blame import Blame
from .budget import budget_steps
from .errors import COMMAND_LINE
from .base_shape import base_origins, resolved_bases
from .experiment import Experiment, Variant
from .lengths import eval_lengths
from .model_size import counting_config, on_meta, size_problem
from .specs import ComponentSpec
from .transfer import check_transfer, with_transfers


def resolve_experiment(exp: Experiment) -> Experiment:
    """``exp`` resolved (see the module doc); ConfigError naming the file and key on the first problem."""
    variants, built, bases = {}, set(), resolved_bases(exp)
    for name, variant in exp.variants.items():
        fill = bases.get(name, {})
        variant = dataclasses.replace(variant, data=_resolved_data(Blame(exp, variant)), model={**variant.model, **fill},
                                      train=dataclasses.replace(variant.train),
                                      origins={**variant.origins, **base_origins(exp, fill)})
        _check_build(Blame(exp, variant), built)
        variants[name] = variant
    resolved = dataclasses.replace(exp, variants=variants)
    if exp.tune is not None and exp.tune.at == "smallest":
        check_transfer(resolved)
        variants = resolved.variants = with_transfers(resolved)
    steps, lengths = budget_steps(resolved), eval_lengths(resolved)
    resolved.variants = {name: _with(v, steps.get(name), lengths[name]) for name, v in variants.items()}
    return resolved


def _with(variant: Variant, steps: int | None, lengths: list[int]) -> Variant:
    train = variant.train if steps is None else dataclasses.replace(variant.train, steps=steps)
    return dataclasses.replace(variant, train=train, eval_lengths=lengths)


def _resolved_data(blame: Blame) -> dict:
    """The variant's data section with its files found and a given tokenizer's vocabulary."""
    data = dict(blame.data)
    try:
        DataSettings(**data).check_cache_root(blame.exp.path.parent)  # where `prepare` puts it
    except DataError as exc:
        blame.fail(exc.key, exc.message)
    if data["source"] in ("files", "bin"):
        data["paths"] = [resolve_path(blame, p) for p in data["paths"]]
    if data["tokenizer"] is not None:
        data["tokenizer"] = resolve_path(blame, data["tokenizer"], "data.tokenizer")
        try:  # the model's vocabulary is the given tokenizer's: resolved here, so show, budgets and runs agree
            data["vocab_size"] = load_tokenizer(Path(data["tokenizer"])).vocab_size
        except DataError as exc:
            blame.fail(exc.key, exc.message)
    return data


def resolve_path(blame: Blame, path: str, key: str = "data.paths") -> str:
    """An absolute path (or glob) that exists: relative ones are tried against the folder of the
    file that set ``key``, the experiment's folder, then the working directory."""
    exp = blame.exp
    source, _ = blame.variant.origins.get(key, (str(exp.path), key))
    bases = [Path.cwd() if source == COMMAND_LINE else Path(source).parent, exp.path.parent, Path.cwd()]
    bases = list(dict.fromkeys(b.resolve() for b in bases))
    given = Path(path).expanduser()
    for candidate in [given] if given.is_absolute() else [b / given for b in bases]:
        if glob.has_magic(str(candidate)):
            if any(os.path.isfile(m) for m in glob.iglob(str(candidate), recursive=True)):
                return os.path.normpath(candidate)
        elif candidate.is_dir():
            blame.fail(key, f"'{path}' is a directory", f"text files, or a glob such as '{path.rstrip('/')}/**/*.txt'"
                       if key == "data.paths" else "a sentencepiece .model file or a tokenizer.json")
        elif candidate.is_file():
            return str(candidate.resolve())
    where = "" if given.is_absolute() else f" (looked in {', '.join(str(b) for b in bases)})"
    blame.fail(key, f"'{path}' matches no file{where}", "existing text files or globs" if key == "data.paths" else
               "an existing sentencepiece .model file or tokenizer.json")


def _check_build(blame: Blame, built: set[str]) -> None:
    """The variant's model within the size bound and built on the meta device, once per distinct config."""
    try:  # a base resolved from the sizes (base_shape.py) is checked here first, naming where it came from
        config = counting_config(blame.variant.transformer_config())
    except InvalidConfig as exc:
        blame.fail(f"model.{exc.field}", str(exc))
    fingerprint = repr(sorted(config.to_dict().items()))
    if fingerprint in built:
        return
    too_big = size_problem(config)  # before the full build, which a huge model would take minutes for
    if too_big:
        blame.fail(*too_big)
    problem = build_problem(config)
    if problem:
        blame.fail(_culprit_option(config) or "model", f"cannot build the model: {problem}")
    built.add(fingerprint)


def build_problem(config) -> str | None:
    """Why ``TransformerLM(config)`` fails, or None; built on the meta device (shapes only: no memory, no time)."""
    try:
        with on_meta():
            TransformerLM(config)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _culprit_option(config) -> str | None:
    """The component option a failed build is due to (``model.ffn.top_k``): the first whose removal
    lets the model build; None when no single option is to blame."""
    for field in COMPONENT_FIELDS:
        spec = ComponentSpec.parse(getattr(config, field))
        for option in spec.options:
            trial = ComponentSpec(spec.name, {k: v for k, v in spec.options.items() if k != option}).canonical()
            try:
                candidate = dataclasses.replace(config, **{field: trial})
            except InvalidConfig:
                continue
            if build_problem(candidate) is None:
                return f"model.{field}.{option}"
    return None
