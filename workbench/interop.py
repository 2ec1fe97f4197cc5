"""Weight interop with Hugging Face ``transformers``: LLaMA and GPT-2 <-> ``TransformerLM``.

    model = from_hf(LlamaForCausalLM.from_pretrained(...))   # or a GPT2LMHeadModel
    hf = to_hf(model)                                          # back, for generate() or the Hub

Both directions map the config field by field and refuse what the other side cannot express
(rope scaling, GPT-2's per-layer attention scaling, post-norm, ...) instead of converting it into a
model that silently computes something else. ``transformers`` is a dev extra: imported lazily.

Weight layouts differ in two ways: our attention fuses q, k, v into one ``qkv`` Linear (rows: q
heads, then k heads, then v heads), which LLaMA keeps as three Linears; and GPT-2 stores its
projections as ``Conv1D``, i.e. transposed (in, out) matrices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from components import TransformerConfig, TransformerLM

log = logging.getLogger(__name__)

# transformers activation name -> our FFN name, per family.
LLAMA_ACTIVATIONS = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu", "relu": "reglu"}
GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu", "relu2": "relu2"}
# And back: one canonical transformers name per FFN.
_LLAMA_ACT_OF = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}
_GPT2_ACT_OF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "relu2": "relu2"}


@dataclass(frozen=True)
class _Map:
    """One of our tensors and the transformers tensors it is made of."""

    ours: str
    theirs: tuple[str, ...]  # concatenated along the output axis, in this order
    transpose: bool = False  # GPT-2's Conv1D stores (in, out): the transpose of nn.Linear's (out, in)


# --------------------------------------------------------------------------- configs


def _rope(hf_config) -> tuple[float, str]:
    """(theta, rope type) from a LLaMA config, transformers 5.x (rope_parameters) or older (rope_theta)."""
    params = getattr(hf_config, "rope_parameters", None)
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"]), str(params.get("rope_type", "default"))
    scaling = getattr(hf_config, "rope_scaling", None) or {}
    return float(getattr(hf_config, "rope_theta", 10000.0)), str(scaling.get("rope_type", scaling.get("type", "default")))


def _init_std(hf_config) -> float:
    std = getattr(hf_config, "initializer_range", None)
    return float(std) if isinstance(std, (int, float)) and std > 0 else 0.02


def _llama_config(c) -> TransformerConfig:
    theta, rope_type = _rope(c)
    if rope_type != "default":
        raise ValueError(
            f"LLaMA rope type {rope_type!r} (rope scaling) is not supported: the workbench implements plain RoPE only"
        )
    if bool(c.attention_bias) != bool(getattr(c, "mlp_bias", False)):
        raise ValueError(
            f"attention_bias={c.attention_bias} but mlp_bias={getattr(c, 'mlp_bias', False)}: the workbench has "
            "one `bias` switch for every linear layer, so both must agree"
        )
    if c.hidden_act not in LLAMA_ACTIVATIONS:
        raise ValueError(f"LLaMA hidden_act {c.hidden_act!r} is not supported (supported: {', '.join(LLAMA_ACTIVATIONS)})")
    n_heads = c.num_attention_heads
    n_kv = getattr(c, "num_key_value_heads", None) or n_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_heads
    return TransformerConfig(
        vocab_size=c.vocab_size,
        max_seq_len=c.max_position_embeddings,
        dim=c.hidden_size,
        n_layers=c.num_hidden_layers,
        n_heads=n_heads,
        n_kv_heads=None if n_kv == n_heads else n_kv,
        head_dim=None if head_dim * n_heads == c.hidden_size else head_dim,
        norm="rmsnorm",
        norm_eps=float(c.rms_norm_eps),
        norm_placement="pre",
        ffn=LLAMA_ACTIVATIONS[c.hidden_act],
        ffn_hidden_dim=c.intermediate_size,
        positions="rope",
        rope_theta=theta,
        attention="sdpa",
        bias=bool(c.attention_bias),
        tie_embeddings=bool(getattr(c, "tie_word_embeddings", False)),
        init_std=_init_std(c),
    )


def _gpt2_config(c) -> TransformerConfig:
    unsupported = {
        "scale_attn_by_inverse_layer_idx": (getattr(c, "scale_attn_by_inverse_layer_idx", False), False),
        "reorder_and_upcast_attn": (getattr(c, "reorder_and_upcast_attn", False), False),
        "scale_attn_weights": (getattr(c, "scale_attn_weights", True), True),
        "add_cross_attention": (getattr(c, "add_cross_attention", False), False),
    }
    for name, (value, needed) in unsupported.items():
        if bool(value) != needed:
            raise ValueError(f"GPT-2 option {name}={value} is not supported by the workbench (needs {needed})")
    if c.activation_function not in GPT2_ACTIVATIONS:
        raise ValueError(
            f"GPT-2 activation_function {c.activation_function!r} is not supported "
            f"(supported: {', '.join(GPT2_ACTIVATIONS)})"
        )
    return TransformerConfig(
        vocab_size=c.vocab_size,
        max_seq_len=c.n_positions,
        dim=c.n_embd,
        n_layers=c.n_layer,
        n_heads=c.n_head,
        norm="layernorm",
        norm_eps=float(c.layer_norm_epsilon),
        norm_placement="pre",
        ffn=GPT2_ACTIVATIONS[c.activation_function],
        ffn_hidden_dim=c.n_inner or 4 * c.n_embd,
        positions="learned",
        attention="sdpa",
        bias=True,
        tie_embeddings=bool(getattr(c, "tie_word_embeddings", True)),
        init_std=_init_std(c),
    )


_CONFIG_FROM_HF = {"llama": _llama_config, "gpt2": _gpt2_config}


def config_from_hf(hf_config) -> TransformerConfig:
    """The TransformerConfig equivalent to a transformers LLaMA or GPT-2 config; ValueError if there is none."""
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in _CONFIG_FROM_HF:
        raise ValueError(f"cannot convert transformers model type {model_type!r} (supported: {', '.join(_CONFIG_FROM_HF)})")
    return _CONFIG_FROM_HF[model_type](hf_config)


def _mismatches(cfg: TransformerConfig, family: str) -> list[str]:
    """Why ``cfg`` cannot be expressed as ``family`` ("llama" or "gpt2"); empty if it can."""
    if family == "llama":
        wanted = {"norm": "rmsnorm", "norm_placement": "pre", "positions": "rope"}
        problems = [f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in wanted.items() if getattr(cfg, k) != v]
        if cfg.ffn not in _LLAMA_ACT_OF:
            problems.append(f"ffn={cfg.ffn!r} (needs one of {', '.join(_LLAMA_ACT_OF)})")
        if cfg.dim % cfg.n_heads:
            problems.append(f"dim={cfg.dim} (transformers needs a multiple of n_heads={cfg.n_heads})")
        return problems
    wanted = {"norm": "layernorm", "norm_placement": "pre", "positions": "learned", "bias": True}
    problems = [f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in wanted.items() if getattr(cfg, k) != v]
    if cfg.ffn not in _GPT2_ACT_OF:
        problems.append(f"ffn={cfg.ffn!r} (needs one of {', '.join(_GPT2_ACT_OF)})")
    if cfg.kv_heads != cfg.n_heads:
        problems.append(f"n_kv_heads={cfg.n_kv_heads} (GPT-2 has no grouped key/value heads)")
    if cfg.head_size * cfg.n_heads != cfg.dim:
        problems.append(f"head_dim={cfg.head_dim} (GPT-2 needs dim // n_heads = {cfg.dim // cfg.n_heads})")
    return problems


def _family(cfg: TransformerConfig) -> str:
    reasons = {family: _mismatches(cfg, family) for family in ("llama", "gpt2")}
    for family, problems in reasons.items():
        if not problems:
            return family
    detail = "; ".join(f"as {name.upper()}: {', '.join(problems)}" for name, problems in reasons.items())
    raise ValueError(f"this workbench model has no transformers equivalent ({detail})")


def _hf_config(model: TransformerLM, family: str, overrides: dict):
    import transformers

    cfg = model.config
    common = dict(
        vocab_size=cfg.vocab_size,
        tie_word_embeddings=cfg.tie_embeddings,
        initializer_range=cfg.init_std,
        # The workbench knows no token ids; transformers' defaults (GPT-2: 50256) may lie outside the vocab.
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    eps = model.norm.eps  # the module's, so a config that left norm_eps at None converts too
    if family == "llama":
        kwargs = dict(
            common,
            hidden_size=cfg.dim,
            intermediate_size=cfg.hidden_dim,
            num_hidden_layers=cfg.n_layers,
            num_attention_heads=cfg.n_heads,
            num_key_value_heads=cfg.kv_heads,
            head_dim=cfg.head_size,
            hidden_act=_LLAMA_ACT_OF[cfg.ffn],
            max_position_embeddings=cfg.max_seq_len,
            rms_norm_eps=eps,
            rope_theta=float(cfg.rope_theta),  # transformers 5.x moves it into rope_parameters
            attention_bias=cfg.bias,
            mlp_bias=cfg.bias,
        )
        return transformers.LlamaConfig(**{**kwargs, **overrides}), transformers.LlamaForCausalLM
    kwargs = dict(
        common,
        n_embd=cfg.dim,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_positions=cfg.max_seq_len,
        n_inner=None if cfg.hidden_dim == 4 * cfg.dim else cfg.hidden_dim,
        activation_function=_GPT2_ACT_OF[cfg.ffn],
        layer_norm_epsilon=eps,
    )
    return transformers.GPT2Config(**{**kwargs, **overrides}), transformers.GPT2LMHeadModel


# --------------------------------------------------------------------------- weights


def _layout(family: str, cfg: TransformerConfig) -> list[_Map]:
    """Every tensor of our model and where it lives in the transformers model."""
    suffixes = ("weight", "bias") if cfg.bias else ("weight",)
    maps: list[_Map] = []
    if family == "llama":
        maps += [_Map("embed.weight", ("model.embed_tokens.weight",)), _Map("norm.weight", ("model.norm.weight",))]
        for i in range(cfg.n_layers):
            ours, hf = f"blocks.{i}.", f"model.layers.{i}."
            maps += [
                _Map(ours + "attn_norm.weight", (hf + "input_layernorm.weight",)),
                _Map(ours + "ffn_norm.weight", (hf + "post_attention_layernorm.weight",)),
            ]
            for s in suffixes:
                maps.append(_Map(ours + f"attn.qkv.{s}", tuple(hf + f"self_attn.{p}_proj.{s}" for p in "qkv")))
                maps.append(_Map(ours + f"attn.out.{s}", (hf + f"self_attn.o_proj.{s}",)))
                maps += [_Map(ours + f"ffn.{p}.{s}", (hf + f"mlp.{p}_proj.{s}",)) for p in ("gate", "up", "down")]
    else:
        maps += [
            _Map("embed.weight", ("transformer.wte.weight",)),
            _Map("positions.weight", ("transformer.wpe.weight",)),
            _Map("norm.weight", ("transformer.ln_f.weight",)),
            _Map("norm.bias", ("transformer.ln_f.bias",)),
        ]
        for i in range(cfg.n_layers):
            ours, hf = f"blocks.{i}.", f"transformer.h.{i}."
            for s in ("weight", "bias"):
                conv = s == "weight"
                maps += [
                    _Map(ours + f"attn_norm.{s}", (hf + f"ln_1.{s}",)),
                    _Map(ours + f"ffn_norm.{s}", (hf + f"ln_2.{s}",)),
                    _Map(ours + f"attn.qkv.{s}", (hf + f"attn.c_attn.{s}",), conv),  # c_attn: q, k, v fused as ours
                    _Map(ours + f"attn.out.{s}", (hf + f"attn.c_proj.{s}",), conv),
                    _Map(ours + f"ffn.up.{s}", (hf + f"mlp.c_fc.{s}",), conv),
                    _Map(ours + f"ffn.down.{s}", (hf + f"mlp.c_proj.{s}",), conv),
                ]
    maps.append(_Map("lm_head.weight", ("lm_head.weight",)))  # tied or not: both state dicts list it
    return maps


def _check_all_used(hf_model, used: set[str]) -> None:
    names = {name for name, _ in hf_model.named_parameters(remove_duplicate=False)}
    left = sorted(names - used)
    if left:
        raise ValueError(f"the transformers model has parameters the workbench does not model: {', '.join(left[:5])}")


def from_hf(hf_model) -> TransformerLM:
    """A TransformerLM computing the same logits as a transformers ``LlamaForCausalLM`` or
    ``GPT2LMHeadModel``, on the same device and in the same dtype; ValueError for anything else."""
    hf_config = getattr(hf_model, "config", None)
    cfg = config_from_hf(hf_config)
    if not hasattr(hf_model, "lm_head"):
        raise ValueError(f"{type(hf_model).__name__} has no lm_head: pass the causal-LM class (e.g. LlamaForCausalLM)")
    family = hf_config.model_type
    theirs = hf_model.state_dict()
    maps = _layout(family, cfg)
    _check_all_used(hf_model, {name for m in maps for name in m.theirs})
    ours = {m.ours: torch.cat([theirs[n].t() if m.transpose else theirs[n] for n in m.theirs]) for m in maps}

    reference = theirs[maps[0].theirs[0]]  # the token embedding
    with torch.device("meta"):  # skip a random init that every tensor below overwrites
        model = TransformerLM(cfg)
    model.to_empty(device=reference.device).to(reference.dtype)
    if cfg.tie_embeddings:  # to_empty gives each module its own tensor: tie again
        model.lm_head.weight = model.embed.weight
    model.load_state_dict(ours, strict=True)
    log.info("converted %s (%s) into a TransformerLM with %d parameters", type(hf_model).__name__, family, model.num_params())
    return model.train(hf_model.training)


def to_hf(model: TransformerLM, **config_overrides):
    """The transformers ``LlamaForCausalLM`` or ``GPT2LMHeadModel`` computing the same logits as ``model``.

    ``config_overrides`` go to the transformers config (e.g. ``bos_token_id``, ``attn_implementation``).
    Raises ValueError when the architecture has no transformers equivalent (post-norm, sinusoidal or
    no positions, LayerNorm with RoPE, ...), naming the fields in the way.
    """
    family = _family(model.config)
    hf_config, cls = _hf_config(model, family, config_overrides)
    hf_model = cls(hf_config)
    reference = model.embed.weight
    hf_model.to(device=reference.device, dtype=reference.dtype)
    shapes = {name: t.shape for name, t in hf_model.state_dict().items()}
    ours = model.state_dict()
    theirs: dict[str, torch.Tensor] = {}
    maps = _layout(family, model.config)
    for m in maps:
        sizes = [shapes[n][1] if m.transpose else shapes[n][0] for n in m.theirs]
        for name, part in zip(m.theirs, ours[m.ours].split(sizes)):
            theirs[name] = part.t() if m.transpose else part
    result = hf_model.load_state_dict(theirs, strict=False)
    params = {name for name, _ in hf_model.named_parameters(remove_duplicate=False)}
    missing = [k for k in result.missing_keys if k in params]
    if missing or result.unexpected_keys:  # a layout bug, not a user error
        raise RuntimeError(f"weight layout mismatch: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
    log.info("converted a TransformerLM into %s", cls.__name__)
    return hf_model.train(model.training)
