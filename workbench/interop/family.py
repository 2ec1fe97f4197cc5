"""What the converter knows of one transformers family: its config mapping both ways, its weight layout,
and which workbench settings it can express (``Family.accepts``), so ``to_hf`` can pick the family or
say which component stands in the way.

Also the pieces every family shares: the weight map record (``Map``) and the config fields common to
all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping

from components import TransformerConfig, TransformerLM


@dataclass(frozen=True)
class Map:
    """Our tensors ``ours``, concatenated along the output axis (dim 0), equal their tensors ``theirs``,
    concatenated likewise; one side holds a single tensor.

    ``index`` selects one slice of each of theirs (one expert of a stacked (n_experts, ...) tensor);
    ``transpose``: GPT-2's Conv1D stores (in, out), the transpose of nn.Linear's (out, in).
    """

    ours: tuple[str, ...]
    theirs: tuple[str, ...]
    index: int | None = None
    transpose: bool = False

    def __post_init__(self) -> None:
        if len(self.ours) > 1 and len(self.theirs) > 1:
            raise ValueError(f"a map joins several tensors on one side only: {self}")


def one(ours: str, theirs: str, **kwargs: Any) -> Map:
    """A map between one of our tensors and one of theirs."""
    return Map((ours,), (theirs,), **kwargs)


# The settings of a TransformerConfig that decide which family can hold it. A family's ``accepts``
# lists the values it can express per setting; a setting it leaves out takes any value.
AXES = ("norm", "norm_placement", "positions", "ffn", "attention", "qk_norm", "window", "bias", "n_kv_heads", "head_dim")

# Options transformers has a config field for: any other option set in a spec (e.g. a LayerNorm
# without bias) computes something no family expresses.
CONVERTIBLE_OPTIONS = {
    "norm": ("eps",),
    "norm_placement": (),
    "positions": ("theta",),
    "ffn": ("n_experts", "top_k", "aux_loss_coef"),
    "attention": (),
}

# Kernels known to compute exact causal softmax attention, i.e. what transformers computes.
SOFTMAX_KERNELS = ("naive", "sdpa", "flash")


def features(cfg: TransformerConfig) -> dict[str, Hashable]:
    """The value of each axis for ``cfg``: component names, and categories for the shape settings."""
    return {
        "norm": cfg.component("norm")[0],
        "norm_placement": cfg.component("norm_placement")[0],
        "positions": cfg.component("positions")[0],
        "ffn": cfg.component("ffn")[0],
        "attention": cfg.component("attention")[0],
        "qk_norm": cfg.qk_norm,
        "window": "full" if cfg.window is None else "sliding",
        "bias": cfg.bias,
        "n_kv_heads": "grouped" if cfg.n_kv_heads != cfg.n_heads else "per head",
        "head_dim": "dim // n_heads" if cfg.head_dim * cfg.n_heads == cfg.dim else "other",
    }


def describe(cfg: TransformerConfig, axis: str) -> str:
    """``axis=value`` as the user wrote it, e.g. ``norm='layernorm'``, ``window=8``, ``n_kv_heads=2``."""
    if axis in CONVERTIBLE_OPTIONS:
        return f"{axis}={cfg.component(axis)[0]!r}"
    if axis == "head_dim":
        return f"head_dim={cfg.head_dim}"
    return f"{axis}={getattr(cfg, axis)!r}"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per family
class Family:
    """One transformers family: how its config and weights map to a TransformerLM's.

    Args:
        model_type: transformers' ``config.model_type``.
        model_class, config_class: the transformers class names (``transformers.<name>``).
        accepts: per axis (``AXES``), the values the family can express; an axis left out takes any.
        config_from_hf: transformers config -> TransformerConfig; ValueError naming the field it cannot take.
        hf_kwargs: TransformerLM -> the transformers config's keyword arguments.
        layout: TransformerLM -> every tensor of ours and where it lives in the transformers model.
        limits: TransformerConfig -> reasons beyond ``accepts`` that transformers cannot build it.
    """

    model_type: str
    label: str
    model_class: str
    config_class: str
    accepts: Mapping[str, tuple]
    config_from_hf: Callable[[Any], TransformerConfig]
    hf_kwargs: Callable[[TransformerLM], dict]
    layout: Callable[[TransformerLM], list[Map]]
    limits: Callable[[TransformerConfig], list[str]] = field(default=lambda cfg: [])

    def __post_init__(self) -> None:
        unknown = set(self.accepts) - set(AXES)
        if unknown:
            raise ValueError(f"family {self.label}: unknown axes {sorted(unknown)} (axes: {', '.join(AXES)})")

    def holds(self, axis: str, value: Hashable) -> bool:
        return axis not in self.accepts or value in self.accepts[axis]


# --------------------------------------------------------------------------- shared config fields


def rope(hf_config, label: str) -> float:
    """RoPE theta of a transformers config (5.x ``rope_parameters`` or older ``rope_theta``); ValueError
    for any RoPE scaling, which the workbench does not implement."""
    params = getattr(hf_config, "rope_parameters", None)
    if isinstance(params, dict) and "rope_theta" in params:
        theta, rope_type = float(params["rope_theta"]), str(params.get("rope_type", "default"))
    else:
        scaling = getattr(hf_config, "rope_scaling", None) or {}
        theta = float(getattr(hf_config, "rope_theta", 10000.0))
        rope_type = str(scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type != "default":
        raise ValueError(f"{label} rope type {rope_type!r} (rope scaling) is not supported: the workbench implements plain RoPE only")
    return theta


def init_std(hf_config) -> float:
    std = getattr(hf_config, "initializer_range", None)
    return float(std) if isinstance(std, (int, float)) and std > 0 else 0.02


def common_hf_kwargs(model: TransformerLM) -> dict:
    """Config fields every family has."""
    cfg = model.config
    return dict(
        vocab_size=cfg.vocab_size,
        tie_word_embeddings=cfg.tie_embeddings,
        initializer_range=cfg.init_std,
        # The workbench knows no token ids; transformers' defaults (GPT-2: 50256) may lie outside the vocab.
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
