"""Mixtral <-> a TransformerLM with ``ffn=moe``: Mistral's attention (sliding_window -> window) with a
mixture of SwiGLU experts in place of the MLP.

    num_local_experts      -> n_experts
    num_experts_per_tok    -> top_k
    intermediate_size      -> ffn_hidden_dim = intermediate_size * top_k (each expert is
                              ffn_hidden_dim // top_k wide: components/moe.py)
    router_aux_loss_coef c -> aux_loss_coef = c * top_k (our load-balancing loss is normalised to 1
                              under even routing; transformers' sums to top_k)

transformers 5 stacks the experts: ``mlp.experts.gate_up_proj`` is (n_experts, 2 * width, dim), gate
rows then up rows, and ``mlp.experts.down_proj`` is (n_experts, dim, width); the router is ``mlp.gate``.
We keep one SwiGLU per expert (``ffn.experts.E.{gate,up,down}``) and the router as ``ffn.router``.

transformers' default experts kernel (``grouped_mm``) needs rows of 16 bytes' multiple: an expert width
or dim that is not a multiple of 4 (fp32) or 8 (bf16) raises "strides should be multiple of 16 bytes"
in its forward; pass ``experts_implementation="eager"`` to ``to_hf`` for such a model.
"""

from __future__ import annotations

from components import TransformerConfig, TransformerLM

from .family import Family, Map, one
from .llama import PRE_NORMS, ROPE_FAMILY, decoder_config, decoder_hf_kwargs, decoder_layout, default_head_dim


def _mixtral_config(c) -> TransformerConfig:
    if c.hidden_act not in ("silu", "swish"):
        raise ValueError(f"Mixtral hidden_act {c.hidden_act!r} is not supported: the workbench's MoE experts are SwiGLU (silu)")
    if c.router_jitter_noise:
        raise ValueError(
            f"Mixtral router_jitter_noise={c.router_jitter_noise} is not supported: the workbench's router adds no noise in training"
        )
    k = c.num_experts_per_tok
    ffn = {"name": "moe", "n_experts": c.num_local_experts, "top_k": k, "aux_loss_coef": float(c.router_aux_loss_coef) * k}
    return decoder_config(c, "Mixtral", ffn=ffn, ffn_hidden_dim=c.intermediate_size * k, window=c.sliding_window)


def _mixtral_kwargs(model: TransformerLM) -> dict:
    moe = model.blocks[0].ffn
    kwargs = dict(
        decoder_hf_kwargs(model),
        intermediate_size=moe.experts[0].up.out_features,
        hidden_act="silu",
        num_local_experts=moe.n_experts,
        num_experts_per_tok=moe.top_k,
        router_aux_loss_coef=moe.aux_loss_coef / moe.top_k,
        sliding_window=model.config.window,
    )
    return default_head_dim(kwargs, model.config)


def _layout(model: TransformerLM) -> list[Map]:
    def moe_maps(layer: int, ours: str, hf: str) -> list[Map]:
        maps = [one(ours + "router.weight", hf + "gate.weight")]
        for e in range(model.blocks[layer].ffn.n_experts):
            expert = ours + f"experts.{e}."
            maps.append(Map((expert + "gate.weight", expert + "up.weight"), (hf + "experts.gate_up_proj",), index=e))
            maps.append(Map((expert + "down.weight",), (hf + "experts.down_proj",), index=e))
        return maps

    return decoder_layout(model, PRE_NORMS, moe_maps)


MIXTRAL = Family(
    "mixtral", "Mixtral", "MixtralForCausalLM", "MixtralConfig",
    accepts=dict(ROPE_FAMILY, norm_placement=("pre",), ffn=("moe",), qk_norm=("none",), bias=(False,)),
    config_from_hf=_mixtral_config, hf_kwargs=_mixtral_kwargs, layout=_layout,
)
