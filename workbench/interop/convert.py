"""from_hf / to_hf: config and weights between a transformers causal LM and a TransformerLM, by family.

``to_hf`` picks the first family (in ``FAMILIES`` order) that can express every setting of the model,
and otherwise says which setting, or which pair of settings, no family has.
"""

from __future__ import annotations

import itertools
import logging

import torch

from components import TransformerConfig, TransformerLM

from .family import AXES, CONVERTIBLE_OPTIONS, Family, Map, describe, features
from .fold import fold_multipliers
from .gpt2 import GPT2
from .llama import LLAMA, MISTRAL, OLMO2, QWEN3
from .mixtral import MIXTRAL

log = logging.getLogger(__name__)

# Preference order for to_hf: a plain config is LLaMA, not the Mistral without a window it also is.
FAMILIES: tuple[Family, ...] = (LLAMA, MISTRAL, QWEN3, OLMO2, MIXTRAL, GPT2)
BY_MODEL_TYPE = {f.model_type: f for f in FAMILIES}


def _labels(families) -> str:
    return ", ".join(f.label for f in families)


def config_from_hf(hf_config) -> TransformerConfig:
    """The TransformerConfig equivalent to a transformers config of a supported family; ValueError if there is none."""
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in BY_MODEL_TYPE:
        raise ValueError(f"cannot convert transformers model type {model_type!r} (supported: {', '.join(BY_MODEL_TYPE)})")
    return BY_MODEL_TYPE[model_type].config_from_hf(hf_config)


def _wanting(family: Family, cfg: TransformerConfig, values: dict) -> list[str]:
    """What keeps ``family`` from expressing ``cfg`` (empty if nothing)."""
    wanting = [
        f"{describe(cfg, a)} (needs {' or '.join(map(repr, family.accepts[a]))})" for a in AXES if not family.holds(a, values[a])
    ]
    return wanting + family.limits(cfg)


def family_of(cfg: TransformerConfig, model_type: str | None = None) -> Family:
    """The family that expresses ``cfg`` (the first in FAMILIES, or the one of ``model_type``);
    ValueError naming the settings in the way when none does."""
    prefix = "this workbench model has no transformers equivalent"
    if model_type is not None:
        if model_type not in BY_MODEL_TYPE:
            raise ValueError(f"unknown transformers family {model_type!r} (supported: {', '.join(BY_MODEL_TYPE)})")
        prefix = f"this workbench model cannot be a transformers {BY_MODEL_TYPE[model_type].label} model"
    options = [
        f"{field} option {key}={value!r}"
        for field, allowed in CONVERTIBLE_OPTIONS.items()
        for key, value in cfg.component(field)[1].items()
        if key not in allowed
    ]
    if options:
        raise ValueError(f"{prefix}: {', '.join(options)}: no transformers family has a field for it")
    values = features(cfg)
    if model_type is not None:
        wanting = _wanting(BY_MODEL_TYPE[model_type], cfg, values)
        if wanting:
            raise ValueError(f"{prefix}: {', '.join(wanting)}")
        return BY_MODEL_TYPE[model_type]
    holders = {axis: [f for f in FAMILIES if f.holds(axis, values[axis])] for axis in AXES}
    alone = [axis for axis in AXES if not holders[axis]]
    if alone:
        raise ValueError(
            f"{prefix}: " + "; ".join(f"{describe(cfg, a)}: no transformers family has it" for a in alone)
            + f" (families converted: {_labels(FAMILIES)})"
        )
    candidates = [f for f in FAMILIES if all(f in holders[a] for a in AXES)]
    if not candidates:
        for a, b in itertools.combinations(AXES, 2):
            if not set(holders[a]) & set(holders[b]):
                raise ValueError(
                    f"{prefix}: {describe(cfg, a)} with {describe(cfg, b)}: no transformers family has both "
                    f"({describe(cfg, a)}: {_labels(holders[a])}; {describe(cfg, b)}: {_labels(holders[b])})"
                )
        closest = min(FAMILIES, key=lambda f: sum(f not in holders[a] for a in AXES))
        raise ValueError(f"{prefix}: closest is {closest.label}, but {', '.join(_wanting(closest, cfg, values))}")
    problems = {}
    for family in candidates:
        problems[family.label] = family.limits(cfg)
        if not problems[family.label]:
            return family
    raise ValueError(f"{prefix}: " + "; ".join(f"as {label}: {', '.join(p)}" for label, p in problems.items()))


def _check_all_used(hf_model, maps: list[Map]) -> None:
    used = {name for m in maps for name in m.theirs}
    left = sorted({name for name, _ in hf_model.named_parameters(remove_duplicate=False)} - used)
    if left:
        raise ValueError(f"the transformers model has parameters the workbench does not model: {', '.join(left[:5])}")


def _theirs(tensors: dict, name: str, m: Map) -> torch.Tensor:
    t = tensors[name] if m.index is None else tensors[name][m.index]
    return t.t() if m.transpose else t


def from_hf(hf_model) -> TransformerLM:
    """A TransformerLM computing the same logits as a transformers causal LM of a supported family
    (LLaMA, Mistral, Qwen3, OLMo 2, Mixtral, GPT-2), on the same device and in the same dtype;
    ValueError for anything else, naming the setting it cannot take."""
    hf_config = getattr(hf_model, "config", None)
    cfg = config_from_hf(hf_config)
    if not hasattr(hf_model, "lm_head"):
        raise ValueError(f"{type(hf_model).__name__} has no lm_head: pass the causal-LM class (e.g. LlamaForCausalLM)")
    family = BY_MODEL_TYPE[hf_config.model_type]
    with torch.device("meta"):  # skip a random init that every tensor below overwrites
        model = TransformerLM(cfg)
    maps = family.layout(model)
    _check_all_used(hf_model, maps)
    theirs = hf_model.state_dict()
    rows = {name: t.shape[0] for name, t in model.state_dict().items()}
    ours: dict[str, torch.Tensor] = {}
    for m in maps:
        whole = torch.cat([_theirs(theirs, n, m) for n in m.theirs])
        ours.update(zip(m.ours, whole.split([rows[n] for n in m.ours])))

    reference = theirs[maps[0].theirs[0]]  # the token embedding
    model.to_empty(device=reference.device).to(reference.dtype)
    if cfg.tie_embeddings:  # to_empty gives each module its own tensor: tie again
        model.lm_head.weight = model.embed.weight
    model.load_state_dict(ours, strict=True)
    log.info("converted %s (%s) into a TransformerLM with %d parameters", type(hf_model).__name__, family.label, model.num_params())
    return model.train(hf_model.training)


def to_hf(model: TransformerLM, family: str | None = None, **config_overrides):
    """The transformers causal LM (LLaMA, Mistral, Qwen3, OLMo 2, Mixtral or GPT-2) computing the same
    logits as ``model``.

    ``family``: a transformers model_type ("mistral", ...) to convert into; None picks the first
    family in FAMILIES that fits (a model without window, QK-norm or MoE is a LLaMA, not a Mistral).
    ``config_overrides`` go to the transformers config (e.g. ``bos_token_id``, ``attn_implementation``).
    Raises ValueError when the architecture has no transformers equivalent (post-norm, ALiBi, LayerNorm
    with RoPE, ...), naming the settings in the way. A μP / CompleteP model is first folded into the
    standard model with the same logits (``fold_multipliers``), or refused where that is not exact.
    """
    import transformers

    model = fold_multipliers(model)
    family = family_of(model.config, family)
    hf_config = getattr(transformers, family.config_class)(**{**family.hf_kwargs(model), **config_overrides})
    hf_model = getattr(transformers, family.model_class)(hf_config)
    reference = model.embed.weight
    hf_model.to(device=reference.device, dtype=reference.dtype)
    shapes = {name: t.shape for name, t in hf_model.state_dict().items()}
    ours = model.state_dict()
    pieces: dict[str, dict[int | None, torch.Tensor]] = {}
    for m in family.layout(model):
        whole = torch.cat([ours[n] for n in m.ours])
        sizes = []
        for name in m.theirs:
            shape = shapes[name] if m.index is None else shapes[name][1:]
            sizes.append(shape[1] if m.transpose else shape[0])
        for name, part in zip(m.theirs, whole.split(sizes)):
            pieces.setdefault(name, {})[m.index] = part.t() if m.transpose else part
    theirs = {
        name: parts[None] if None in parts else torch.stack([parts[i] for i in range(len(parts))])
        for name, parts in pieces.items()
    }
    result = hf_model.load_state_dict(theirs, strict=False)
    params = {name for name, _ in hf_model.named_parameters(remove_duplicate=False)}
    missing = [k for k in result.missing_keys if k in params]
    if missing or result.unexpected_keys:  # a layout bug, not a user error
        raise RuntimeError(f"weight layout mismatch: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
    log.info("converted a TransformerLM into %s", family.model_class)
    return hf_model.train(model.training)
