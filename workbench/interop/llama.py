"""The LLaMA lineage of transformers: LLaMA, Mistral, Qwen3 and OLMo 2. One weight layout, four configs.

What each adds to LLaMA, and the workbench setting it maps to:

    Mistral   sliding_window                                   -> window
    Qwen3     q_norm/k_norm: RMSNorm over each head's head_dim -> qk_norm="head"
    OLMo 2    q_norm/k_norm: RMSNorm over the whole q and k projections -> qk_norm="proj";
              post_attention_layernorm / post_feedforward_layernorm on each sublayer's output
              -> norm_placement="reordered" (attn_norm / ffn_norm)

Our attention fuses q, k, v into one ``qkv`` Linear (rows: q heads, then k heads, then v heads),
which these families keep as three Linears.
"""

from __future__ import annotations

from typing import Callable

from components import TransformerConfig, TransformerLM

from .family import SOFTMAX_KERNELS, Family, Map, common_hf_kwargs, init_std, one, rope

# transformers hidden_act -> our GLU FFN, and back (one canonical name per FFN).
GLU_OF_ACT = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu", "relu": "reglu"}
ACT_OF_GLU = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}

# Our block norm -> the transformers module, per placement.
PRE_NORMS = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
REORDERED_NORMS = {"attn_norm": "post_attention_layernorm", "ffn_norm": "post_feedforward_layernorm"}

# What every family of the lineage expresses; each family narrows it.
ROPE_FAMILY = dict(norm=("rmsnorm",), positions=("rope",), attention=SOFTMAX_KERNELS)


def glu_of(c, label: str) -> str:
    if c.hidden_act not in GLU_OF_ACT:
        raise ValueError(f"{label} hidden_act {c.hidden_act!r} is not supported (supported: {', '.join(GLU_OF_ACT)})")
    return GLU_OF_ACT[c.hidden_act]


def no_attention_bias(c, label: str) -> None:
    """Qwen3 and OLMo 2 put biases on q, k, v, o but never on the MLP: the workbench's one ``bias``
    switch covers every linear layer, so only attention_bias=False converts."""
    if c.attention_bias:
        raise ValueError(
            f"{label} attention_bias=True is not supported: it biases the attention projections but not the MLP, "
            "and the workbench has one `bias` switch for every linear layer"
        )


def decoder_config(c, label: str, *, ffn, ffn_hidden_dim: int, bias: bool = False, window: int | None = None,
                   qk_norm: str = "none", placement: str = "pre") -> TransformerConfig:
    """The TransformerConfig of a LLaMA-lineage config; the arguments are what the family adds."""
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
        norm_placement=placement,
        ffn=ffn,
        ffn_hidden_dim=ffn_hidden_dim,
        positions="rope",
        rope_theta=rope(c, label),
        attention="sdpa",
        window=window,
        qk_norm=qk_norm,
        bias=bias,
        tie_embeddings=bool(getattr(c, "tie_word_embeddings", False)),
        init_std=init_std(c),
    )


def decoder_hf_kwargs(model: TransformerLM) -> dict:
    """Config fields of the lineage: sizes, heads, RMSNorm eps and RoPE theta, read from the modules
    (so a spec option such as ``{name: rmsnorm, eps: 1e-5}`` converts too)."""
    cfg = model.config
    return dict(
        common_hf_kwargs(model),
        hidden_size=cfg.dim,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=model.norm.eps,
        rope_theta=float(model.positions.theta),  # transformers 5.x moves it into rope_parameters
    )


def default_head_dim(kwargs: dict, cfg: TransformerConfig) -> dict:
    """``kwargs`` without head_dim when it is dim // n_heads: OLMo 2's config has no head_dim field (its
    attention reads one if set) and Mixtral's leaves it None, so a round trip keeps their configs as they were."""
    if cfg.head_dim * cfg.n_heads == cfg.dim:
        kwargs = {k: v for k, v in kwargs.items() if k != "head_dim"}
    return kwargs


def dim_divisible(cfg: TransformerConfig) -> list[str]:
    """LlamaConfig refuses a hidden size that is not a multiple of the heads, even with head_dim set."""
    if cfg.dim % cfg.n_heads:
        return [f"dim={cfg.dim} (transformers needs a multiple of n_heads={cfg.n_heads})"]
    return []


def glu_maps(ours: str, hf: str, suffixes: tuple[str, ...]) -> list[Map]:
    return [one(ours + f"{p}.{s}", hf + f"{p}_proj.{s}") for p in ("gate", "up", "down") for s in suffixes]


def decoder_layout(model: TransformerLM, norms: dict[str, str], ffn: Callable[[int, str, str], list[Map]]) -> list[Map]:
    """Every tensor of a LLaMA-lineage model: ``norms`` maps our block norms to theirs, ``ffn(layer,
    ours, hf)`` gives the FFN's maps under the block prefixes."""
    cfg = model.config
    suffixes = ("weight", "bias") if cfg.bias else ("weight",)
    maps = [one("embed.weight", "model.embed_tokens.weight"), one("norm.weight", "model.norm.weight")]
    for i in range(cfg.n_layers):
        ours, hf = f"blocks.{i}.", f"model.layers.{i}."
        maps += [one(ours + f"{n}.weight", hf + f"{theirs}.weight") for n, theirs in norms.items()]
        for s in suffixes:
            maps.append(Map((ours + f"attn.qkv.{s}",), tuple(hf + f"self_attn.{p}_proj.{s}" for p in "qkv")))
            maps.append(one(ours + f"attn.out.{s}", hf + f"self_attn.o_proj.{s}"))
        if cfg.qk_norm != "none":
            maps += [one(ours + f"attn.{n}.weight", hf + f"self_attn.{n}.weight") for n in ("q_norm", "k_norm")]
        maps += ffn(i, ours + "ffn.", hf + "mlp.")
    maps.append(one("lm_head.weight", "lm_head.weight"))  # tied or not: both state dicts list it
    return maps


def dense_layout(norms: dict[str, str]) -> Callable[[TransformerLM], list[Map]]:
    def layout(model: TransformerLM) -> list[Map]:
        suffixes = ("weight", "bias") if model.config.bias else ("weight",)
        return decoder_layout(model, norms, lambda i, ours, hf: glu_maps(ours, hf, suffixes))

    return layout


def glu_hf_kwargs(model: TransformerLM) -> dict:
    cfg = model.config
    return dict(decoder_hf_kwargs(model), intermediate_size=cfg.ffn_hidden_dim, hidden_act=ACT_OF_GLU[cfg.component("ffn")[0]])


# --------------------------------------------------------------------------- the four families


def _llama_config(c) -> TransformerConfig:
    if bool(c.attention_bias) != bool(getattr(c, "mlp_bias", False)):
        raise ValueError(
            f"attention_bias={c.attention_bias} but mlp_bias={getattr(c, 'mlp_bias', False)}: the workbench has "
            "one `bias` switch for every linear layer, so both must agree"
        )
    return decoder_config(c, "LLaMA", ffn=glu_of(c, "LLaMA"), ffn_hidden_dim=c.intermediate_size, bias=bool(c.attention_bias))


def _mistral_config(c) -> TransformerConfig:
    return decoder_config(c, "Mistral", ffn=glu_of(c, "Mistral"), ffn_hidden_dim=c.intermediate_size, window=c.sliding_window)


def qwen3_window(c) -> int | None:
    """Qwen3 sets sliding attention per layer (``layer_types``); the workbench has one window for all."""
    kinds = set(c.layer_types)
    if kinds == {"sliding_attention"}:
        return c.sliding_window
    if kinds == {"full_attention"}:
        return None
    raise ValueError(
        f"Qwen3 layer_types {sorted(kinds)} (sliding_window on some layers only) is not supported: "
        "the workbench's window applies to every layer"
    )


def _qwen3_config(c) -> TransformerConfig:
    no_attention_bias(c, "Qwen3")
    return decoder_config(c, "Qwen3", ffn=glu_of(c, "Qwen3"), ffn_hidden_dim=c.intermediate_size, window=qwen3_window(c),
                          qk_norm="head")


def _olmo2_config(c) -> TransformerConfig:
    no_attention_bias(c, "OLMo 2")
    return decoder_config(c, "OLMo 2", ffn=glu_of(c, "OLMo 2"), ffn_hidden_dim=c.intermediate_size, qk_norm="proj",
                          placement="reordered")


def _llama_kwargs(model: TransformerLM) -> dict:
    return dict(glu_hf_kwargs(model), attention_bias=model.config.bias, mlp_bias=model.config.bias)


def _mistral_kwargs(model: TransformerLM) -> dict:
    return dict(glu_hf_kwargs(model), sliding_window=model.config.window)


def _qwen3_kwargs(model: TransformerLM) -> dict:
    window = model.config.window
    # max_window_layers=0: every layer slides (Qwen3 slides layers i >= max_window_layers).
    sliding = dict(use_sliding_window=False)
    if window is not None:
        sliding = dict(use_sliding_window=True, sliding_window=window, max_window_layers=0)
    return dict(glu_hf_kwargs(model), attention_bias=False, **sliding)


def _olmo2_kwargs(model: TransformerLM) -> dict:
    return default_head_dim(dict(glu_hf_kwargs(model), attention_bias=False), model.config)


GLUS = tuple(ACT_OF_GLU)

LLAMA = Family(
    "llama", "LLaMA", "LlamaForCausalLM", "LlamaConfig",
    accepts=dict(ROPE_FAMILY, norm_placement=("pre",), ffn=GLUS, qk_norm=("none",), window=("full",)),
    config_from_hf=_llama_config, hf_kwargs=_llama_kwargs, layout=dense_layout(PRE_NORMS), limits=dim_divisible,
)
MISTRAL = Family(
    "mistral", "Mistral", "MistralForCausalLM", "MistralConfig",
    accepts=dict(ROPE_FAMILY, norm_placement=("pre",), ffn=GLUS, qk_norm=("none",), bias=(False,)),
    config_from_hf=_mistral_config, hf_kwargs=_mistral_kwargs, layout=dense_layout(PRE_NORMS),
)
QWEN3 = Family(
    "qwen3", "Qwen3", "Qwen3ForCausalLM", "Qwen3Config",
    accepts=dict(ROPE_FAMILY, norm_placement=("pre",), ffn=GLUS, qk_norm=("head",), bias=(False,)),
    config_from_hf=_qwen3_config, hf_kwargs=_qwen3_kwargs, layout=dense_layout(PRE_NORMS),
)
OLMO2 = Family(
    "olmo2", "OLMo 2", "Olmo2ForCausalLM", "Olmo2Config",
    accepts=dict(ROPE_FAMILY, norm_placement=("reordered",), ffn=GLUS, qk_norm=("proj",), window=("full",), bias=(False,)),
    config_from_hf=_olmo2_config, hf_kwargs=_olmo2_kwargs, layout=dense_layout(REORDERED_NORMS),
)
