"""GPT-2 <-> TransformerLM: LayerNorm with biases, learned positions, an MLP, pre-norm.

GPT-2 stores its projections as ``Conv1D``, i.e. transposed (in, out) matrices; its ``c_attn`` fuses
q, k, v in our order.
"""

from __future__ import annotations

from components import TransformerConfig, TransformerLM

from .family import SOFTMAX_KERNELS, Family, Map, common_hf_kwargs, init_std, one

# transformers activation_function -> our MLP, and back (one canonical name per MLP).
MLP_OF_ACT = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu", "relu2": "relu2"}
ACT_OF_MLP = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "relu2": "relu2"}


def _config(c) -> TransformerConfig:
    unsupported = {
        "scale_attn_by_inverse_layer_idx": (getattr(c, "scale_attn_by_inverse_layer_idx", False), False),
        "reorder_and_upcast_attn": (getattr(c, "reorder_and_upcast_attn", False), False),
        "scale_attn_weights": (getattr(c, "scale_attn_weights", True), True),
        "add_cross_attention": (getattr(c, "add_cross_attention", False), False),
    }
    for name, (value, needed) in unsupported.items():
        if bool(value) != needed:
            raise ValueError(f"GPT-2 option {name}={value} is not supported by the workbench (needs {needed})")
    if c.activation_function not in MLP_OF_ACT:
        raise ValueError(
            f"GPT-2 activation_function {c.activation_function!r} is not supported (supported: {', '.join(MLP_OF_ACT)})"
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
        ffn=MLP_OF_ACT[c.activation_function],
        ffn_hidden_dim=c.n_inner or 4 * c.n_embd,
        positions="learned",
        attention="sdpa",
        bias=True,
        tie_embeddings=bool(getattr(c, "tie_word_embeddings", True)),
        init_std=init_std(c),
    )


def _hf_kwargs(model: TransformerLM) -> dict:
    cfg = model.config
    return dict(
        common_hf_kwargs(model),
        n_embd=cfg.dim,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_positions=cfg.max_seq_len,
        n_inner=None if cfg.ffn_hidden_dim == 4 * cfg.dim else cfg.ffn_hidden_dim,
        activation_function=ACT_OF_MLP[cfg.component("ffn")[0]],
        layer_norm_epsilon=model.norm.eps,  # the module's, so a config that left norm_eps at None converts too
    )


def _layout(model: TransformerLM) -> list[Map]:
    maps = [
        one("embed.weight", "transformer.wte.weight"),
        one("positions.weight", "transformer.wpe.weight"),
        one("norm.weight", "transformer.ln_f.weight"),
        one("norm.bias", "transformer.ln_f.bias"),
    ]
    for i in range(model.config.n_layers):
        ours, hf = f"blocks.{i}.", f"transformer.h.{i}."
        for s in ("weight", "bias"):
            conv = s == "weight"
            maps += [
                one(ours + f"attn_norm.{s}", hf + f"ln_1.{s}"),
                one(ours + f"ffn_norm.{s}", hf + f"ln_2.{s}"),
                one(ours + f"attn.qkv.{s}", hf + f"attn.c_attn.{s}", transpose=conv),
                one(ours + f"attn.out.{s}", hf + f"attn.c_proj.{s}", transpose=conv),
                one(ours + f"ffn.up.{s}", hf + f"mlp.c_fc.{s}", transpose=conv),
                one(ours + f"ffn.down.{s}", hf + f"mlp.c_proj.{s}", transpose=conv),
            ]
    maps.append(one("lm_head.weight", "lm_head.weight"))  # tied or not: both state dicts list it
    return maps


GPT2 = Family(
    "gpt2", "GPT-2", "GPT2LMHeadModel", "GPT2Config",
    accepts=dict(
        norm=("layernorm",), norm_placement=("pre",), positions=("learned",), ffn=tuple(ACT_OF_MLP), attention=SOFTMAX_KERNELS,
        qk_norm=("none",), window=("full",), bias=(True,), n_kv_heads=("per head",), head_dim=("dim // n_heads",),
    ),
    config_from_hf=_config, hf_kwargs=_hf_kwargs, layout=_layout,
)
