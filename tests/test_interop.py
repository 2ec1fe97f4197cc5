"""workbench.interop against transformers itself: converted models must give the same logits.

Tiny seeded HF models (LLaMA, GPT-2, Qwen3, Mistral, OLMo 2, Mixtral) with randomised norm gains and
biases (so a swapped or missing tensor shows), fp32, tolerance 1e-4, under both of transformers'
eager and sdpa attention (set explicitly), sequences longer than every sliding window.
"""

from __future__ import annotations

import random
import types

import pytest
import torch

transformers = pytest.importorskip("transformers")

from components import RotaryEmbedding, TransformerConfig, TransformerLM  # noqa: E402
from workbench.interop import from_hf, to_hf  # noqa: E402

TOL = dict(atol=1e-4, rtol=1e-4)

LLAMA_BASE = dict(
    vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=64, attn_implementation="eager",
)
GPT2_BASE = dict(
    vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0,
    attn_implementation="eager",
)


@torch.no_grad()
def _randomise_vectors(model: torch.nn.Module) -> None:
    """Norm gains around 1 and biases around 0, instead of exactly 1 and 0, so mappings are tested."""
    for name, p in model.named_parameters():
        if p.ndim == 1:
            p.copy_(0.2 * torch.randn_like(p) + (1.0 if name.endswith("weight") else 0.0))


def llama(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**LLAMA_BASE, **overrides}))
    _randomise_vectors(model)
    return model.eval()


def gpt2(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**GPT2_BASE, **overrides}))
    _randomise_vectors(model)
    return model.eval()


def tokens(vocab_size: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab_size, (2, 24), generator=torch.Generator().manual_seed(seed))


def assert_same_logits(ours: TransformerLM, hf) -> None:
    ids = tokens(ours.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, **TOL)


LLAMA_CASES = {
    "mha": {},
    "gqa": dict(num_key_value_heads=2),
    "mqa": dict(num_key_value_heads=1),
    "tied": dict(tie_word_embeddings=True),
    "theta500k": dict(rope_theta=500000.0),
    "odd_vocab": dict(vocab_size=1009),
    "eps1e-5": dict(rms_norm_eps=1e-5),
    "eps1e-6": dict(rms_norm_eps=1e-6),
    "head_dim32": dict(head_dim=32),  # != hidden / heads = 16
    "bias": dict(attention_bias=True, mlp_bias=True),
    "geglu": dict(hidden_act="gelu"),
}


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("case", LLAMA_CASES)
def test_llama_from_hf_logits_match(case, attn):
    hf = llama(**LLAMA_CASES[case], attn_implementation=attn)
    ours = from_hf(hf)
    assert_same_logits(ours, hf)
    c = hf.config
    assert ours.config.norm_eps == c.rms_norm_eps and ours.config.n_kv_heads == c.num_key_value_heads
    assert ours.config.head_dim == c.head_dim and ours.config.tie_embeddings == c.tie_word_embeddings
    assert (ours.lm_head.weight is ours.embed.weight) == c.tie_word_embeddings


GPT2_CASES = {
    "default": {},
    "untied": dict(tie_word_embeddings=False),
    "odd_vocab": dict(vocab_size=1009),
    "eps1e-3": dict(layer_norm_epsilon=1e-3),
    "n_inner": dict(n_inner=100),
    "gelu_exact": dict(activation_function="gelu"),
    "gelu_pytorch_tanh": dict(activation_function="gelu_pytorch_tanh"),
    "relu": dict(activation_function="relu"),
}


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("case", GPT2_CASES)
def test_gpt2_from_hf_logits_match(case, attn):
    hf = gpt2(**GPT2_CASES[case], attn_implementation=attn)
    ours = from_hf(hf)
    assert_same_logits(ours, hf)
    assert ours.config.component("positions") == ("learned", {}) and ours.config.max_seq_len == hf.config.n_positions
    assert (ours.lm_head.weight is ours.embed.weight) == hf.config.tie_word_embeddings


def _same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "make", [
        lambda: llama(num_key_value_heads=2, attention_bias=True, mlp_bias=True, head_dim=32),
        lambda: llama(tie_word_embeddings=True, rope_theta=500000.0),
        lambda: gpt2(),
        lambda: gpt2(tie_word_embeddings=False, n_inner=100),
    ],
    ids=["llama_gqa_bias_head_dim", "llama_tied", "gpt2_tied", "gpt2_untied"],
)
def test_hf_round_trip_is_exact(make):
    hf = make()
    back = to_hf(from_hf(hf), attn_implementation="eager").eval()
    assert type(back) is type(hf)
    _same_state(back.state_dict(), hf.state_dict())
    assert back.config.tie_word_embeddings == hf.config.tie_word_embeddings
    ids = tokens(hf.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=0, rtol=0)


OURS_CASES = {
    "llama": dict(n_kv_heads=2, bias=True, rope_theta=20000.0, norm_eps=1e-5, vocab_size=301),
    "llama_tied_head_dim": dict(tie_embeddings=True, head_dim=24, ffn="reglu"),
    "gpt2": dict(norm="layernorm", ffn="gelu_tanh", positions="learned", bias=True, tie_embeddings=True),
    "gpt2_relu_untied": dict(norm="layernorm", ffn="relu", positions="learned", bias=True, ffn_hidden_dim=80),
}


@pytest.mark.parametrize("case", OURS_CASES)
def test_ours_to_hf_and_back(case):
    cfg = TransformerConfig(**{**dict(vocab_size=256, max_seq_len=64, dim=64, n_layers=2, n_heads=4), **OURS_CASES[case]})
    ours = TransformerLM(cfg, init_seed=0)
    _randomise_vectors(ours)
    hf = to_hf(ours, attn_implementation="eager").eval()
    assert_same_logits(ours, hf)
    back = from_hf(hf)
    _same_state(back.state_dict(), ours.state_dict())
    assert back.config.ffn_hidden_dim == cfg.ffn_hidden_dim and back.config.head_dim == cfg.head_dim


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: setattr(m.norm, "eps", 1e-2),
        lambda m: setattr(m.positions, "theta", 500.0),
        lambda m: m.blocks[1].attn.qkv.weight.data[64:80].neg_(),  # one key head
    ],
    ids=["eps", "rope_theta", "key_head"],
)
def test_parity_check_catches_small_differences(mutate):
    """The tolerance is tight enough that a wrong eps, theta or a single head breaks parity."""
    hf = llama()
    ours = from_hf(hf)
    mutate(ours)
    ours.positions._cache.clear()
    with pytest.raises(AssertionError):
        assert_same_logits(ours, hf)


def test_from_hf_keeps_dtype():
    hf = llama().to(torch.bfloat16)
    ours = from_hf(hf)
    assert all(p.dtype == torch.bfloat16 for p in ours.parameters())
    assert torch.equal(ours.blocks[0].ffn.gate.weight, hf.model.layers[0].mlp.gate_proj.weight)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: llama(attention_bias=True, mlp_bias=False), "mlp_bias"),
        (lambda: llama(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}), "rope"),
        (lambda: llama(hidden_act="gelu_fast"), "hidden_act"),
        (lambda: gpt2(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
        (lambda: gpt2(reorder_and_upcast_attn=True), "reorder_and_upcast_attn"),
        (lambda: gpt2(scale_attn_weights=False), "scale_attn_weights"),
        (lambda: gpt2(activation_function="silu"), "activation_function"),
        (lambda: types.SimpleNamespace(config=types.SimpleNamespace(model_type="bert")), "bert"),
    ],
    ids=["bias_disagree", "rope_scaling", "llama_act", "inverse_layer_idx", "reorder", "unscaled", "gpt2_act", "bert"],
)
def test_from_hf_rejects_what_it_cannot_model(make, match):
    with pytest.raises(ValueError, match=match):
        from_hf(make())


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(norm_placement="post"), "norm_placement='post'"),
        (dict(positions="sinusoidal"), "positions='sinusoidal'"),
        (dict(norm="layernorm"), "norm='layernorm'"),
        (dict(norm="layernorm", ffn="gelu", positions="learned", bias=False), "bias=False"),
        (dict(norm="layernorm", ffn="gelu", positions="learned", bias=True, n_kv_heads=2), "n_kv_heads"),
    ],
)
def test_to_hf_rejects_configs_without_equivalent(fields, match):
    ours = TransformerLM(TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=1, n_heads=4, **fields))
    with pytest.raises(ValueError, match=match):
        to_hf(ours)


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
def test_rotary_matches_transformers(theta):
    """Our RotaryEmbedding == LlamaRotaryEmbedding + apply_rotary_pos_emb, at several offsets."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    head_dim, T = 16, 12
    hf_rope = LlamaRotaryEmbedding(
        transformers.LlamaConfig(hidden_size=64, num_attention_heads=4, head_dim=head_dim, rope_theta=theta)
    )
    ours = RotaryEmbedding(head_dim, theta=theta)
    gen = torch.Generator().manual_seed(0)
    for offset in (0, 5, 300):  # the last one also grows our cos/sin cache
        q = torch.randn(2, 4, T, head_dim, generator=gen)
        k = torch.randn(2, 2, T, head_dim, generator=gen)
        position_ids = torch.arange(offset, offset + T)[None].expand(2, T)
        cos, sin = hf_rope(q, position_ids)
        want_q, want_k = apply_rotary_pos_emb(q, k, cos, sin)
        got_q, got_k = ours(q, k, offset=offset)
        torch.testing.assert_close(got_q, want_q)
        torch.testing.assert_close(got_k, want_k)


# =========================================================================== Qwen3, Mistral, OLMo 2, Mixtral

# transformers class and config class per family; the base config every case edits.
FAMILY_CLASSES = {
    "qwen3": ("Qwen3ForCausalLM", "Qwen3Config"),
    "mistral": ("MistralForCausalLM", "MistralConfig"),
    "olmo2": ("Olmo2ForCausalLM", "Olmo2Config"),
    "mixtral": ("MixtralForCausalLM", "MixtralConfig"),
    "llama": ("LlamaForCausalLM", "LlamaConfig"),
}
ROPE_BASE = dict(
    vocab_size=256, hidden_size=64, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=64, bos_token_id=None, eos_token_id=None, pad_token_id=None,
)
FAMILY_BASE = {
    "qwen3": dict(ROPE_BASE, head_dim=16),  # Qwen3's default head_dim is 128, not hidden / heads
    "mistral": dict(ROPE_BASE, sliding_window=5),
    "olmo2": ROPE_BASE,
    "mixtral": dict(ROPE_BASE, num_local_experts=4, num_experts_per_tok=2, experts_implementation="eager"),
    "llama": ROPE_BASE,
}
SEQ_LEN = 24  # tokens() length: longer than every sliding window below except the "window_past_seq" cases
IMPLS = ("eager", "sdpa")


def hf_family(family: str, seed: int = 0, attn: str = "eager", **overrides):
    model_class, config_class = FAMILY_CLASSES[family]
    config = getattr(transformers, config_class)(**{**FAMILY_BASE[family], **overrides}, attn_implementation=attn)
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config)
    _randomise_vectors(model)
    return model.eval()


FAMILY_CASES = {
    "qwen3": {
        "mha": {},
        "gqa": dict(num_key_value_heads=2),
        "mqa_tied": dict(num_key_value_heads=1, tie_word_embeddings=True),
        "head_dim32": dict(head_dim=32),
        "head_dim8_odd_vocab": dict(head_dim=8, vocab_size=1009),
        "eps_theta": dict(rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
        "window": dict(use_sliding_window=True, sliding_window=5, max_window_layers=0, num_key_value_heads=2),
        "window_unused": dict(use_sliding_window=True, sliding_window=5, max_window_layers=2),  # no layer slides
        "geglu": dict(hidden_act="gelu"),
    },
    "mistral": {
        "window5": {},
        "window1": dict(sliding_window=1),  # each token sees only itself
        "gqa_window7": dict(num_key_value_heads=2, sliding_window=7),
        "mqa_tied": dict(num_key_value_heads=1, tie_word_embeddings=True, sliding_window=11),
        "full": dict(sliding_window=None),
        "window_past_seq": dict(sliding_window=4096),
        "head_dim24": dict(head_dim=24, sliding_window=3),
        "reglu_eps": dict(hidden_act="relu", rms_norm_eps=1e-5),
    },
    "olmo2": {
        "mha": {},
        "gqa": dict(num_key_value_heads=2),
        "mqa_tied": dict(num_key_value_heads=1, tie_word_embeddings=True),
        "head_dim24": dict(head_dim=24, num_key_value_heads=2),
        "eps_theta": dict(rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 5e5}),
        "geglu": dict(hidden_act="gelu"),
    },
    "mixtral": {
        "e4k2": {},
        "e8k1": dict(num_local_experts=8, num_experts_per_tok=1),
        "e3k3": dict(num_local_experts=3, num_experts_per_tok=3),  # every expert, renormalised weights
        "gqa_window": dict(num_key_value_heads=2, sliding_window=6),
        "tied_head_dim24": dict(tie_word_embeddings=True, head_dim=24),
        "grouped_mm": dict(experts_implementation="grouped_mm", num_key_value_heads=1),
        "aux_coef": dict(router_aux_loss_coef=0.02, num_local_experts=5, num_experts_per_tok=3),
    },
}
CASE_IDS = [(family, case) for family, cases in FAMILY_CASES.items() for case in cases]


def _check_family_config(ours: TransformerLM, hf) -> None:
    """The settings each family adds, read back from the converted config."""
    c, cfg = hf.config, ours.config
    assert cfg.n_kv_heads == c.num_key_value_heads and cfg.norm_eps == c.rms_norm_eps
    assert cfg.head_dim == (getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)
    assert (ours.lm_head.weight is ours.embed.weight) == c.tie_word_embeddings
    family = c.model_type
    assert cfg.qk_norm == {"qwen3": "head", "olmo2": "proj"}.get(family, "none")
    assert cfg.component("norm_placement")[0] == ("reordered" if family == "olmo2" else "pre")
    if family == "qwen3":
        assert cfg.window == (c.sliding_window if "sliding_attention" in c.layer_types else None)
    elif family in ("mistral", "mixtral"):
        assert cfg.window == c.sliding_window
    if family == "mixtral":
        k = c.num_experts_per_tok
        assert cfg.component("ffn") == ("moe", dict(n_experts=c.num_local_experts, top_k=k, aux_loss_coef=c.router_aux_loss_coef * k))
        assert cfg.ffn_hidden_dim == c.intermediate_size * k
        assert ours.blocks[0].ffn.experts[0].up.out_features == c.intermediate_size


@pytest.mark.parametrize("attn", IMPLS)
@pytest.mark.parametrize("family, case", CASE_IDS, ids=[f"{f}-{c}" for f, c in CASE_IDS])
def test_family_from_hf_logits_match(family, case, attn):
    hf = hf_family(family, attn=attn, **FAMILY_CASES[family][case])
    ours = from_hf(hf)
    assert_same_logits(ours, hf)
    _check_family_config(ours, hf)


def _random_hf(family: str, seed: int, attn: str):
    """A random small config of the family: heads, GQA, head_dim, widths, eps, theta, tying and
    (where the family has one) a sliding window, all drawn from ``seed``."""
    rng = random.Random(f"{family}-{seed}")
    n_heads = rng.choice([2, 4, 8])
    kw = dict(
        hidden_size=rng.choice([n_heads * 4, n_heads * 8, 36, 44]),  # need not be a multiple of the heads
        num_attention_heads=n_heads,
        num_key_value_heads=rng.choice([d for d in (1, 2, 4, 8) if n_heads % d == 0]),
        head_dim=rng.choice([8, 12, 16]),
        intermediate_size=rng.choice([16, 40, 72]),
        num_hidden_layers=rng.choice([1, 2, 3]),
        vocab_size=rng.choice([97, 256, 300]),
        rms_norm_eps=rng.choice([1e-6, 1e-5]),
        rope_parameters={"rope_type": "default", "rope_theta": rng.choice([1e4, 5e5])},
        tie_word_embeddings=rng.random() < 0.5,
    )
    window = rng.randint(1, SEQ_LEN - 1)
    if family == "qwen3":
        kw.update(use_sliding_window=rng.random() < 0.5, sliding_window=window, max_window_layers=0)
    elif family in ("mistral", "mixtral"):
        kw.update(sliding_window=window)
    if family == "mixtral":
        n_experts = rng.randint(2, 6)
        kw.update(num_local_experts=n_experts, num_experts_per_tok=rng.randint(1, n_experts))
    return hf_family(family, seed=seed, attn=attn, **kw)


@pytest.mark.parametrize("attn", IMPLS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("family", ["qwen3", "mistral", "olmo2", "mixtral"])
def test_family_random_configs(family, seed, attn):
    """from_hf equals transformers; to_hf(from_hf(m)) is m again, weights, config and logits."""
    hf = _random_hf(family, seed, attn)
    ours = from_hf(hf)
    assert_same_logits(ours, hf)
    _check_family_config(ours, hf)
    back = to_hf(ours, family=family, attn_implementation=attn).eval()
    _same_state(back.state_dict(), hf.state_dict())
    _same_config(back.config, hf.config)


def _same_config(a, b) -> None:
    """Equal transformers configs; router_aux_loss_coef within rounding (c * top_k / top_k), and a
    head_dim of hidden_size // num_attention_heads the same as none (OLMo 2 and Mixtral read it so)."""
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        if d.get("head_dim") in (None, d["hidden_size"] // d["num_attention_heads"]):
            d.pop("head_dim", None)
    if "router_aux_loss_coef" in da:
        assert da.pop("router_aux_loss_coef") == pytest.approx(db.pop("router_aux_loss_coef"), rel=1e-12)
    assert da == db


ROUND_TRIPS = [
    ("qwen3", dict(num_key_value_heads=2, use_sliding_window=True, sliding_window=5, max_window_layers=0)),
    ("qwen3", dict(tie_word_embeddings=True, head_dim=32)),
    ("mistral", dict(num_key_value_heads=2)),
    ("mistral", dict(tie_word_embeddings=True, sliding_window=None)),
    ("olmo2", dict(num_key_value_heads=2, head_dim=24)),
    ("olmo2", dict(tie_word_embeddings=True)),
    ("mixtral", dict(num_key_value_heads=2, sliding_window=6)),
    ("mixtral", dict(tie_word_embeddings=True, num_local_experts=3, num_experts_per_tok=1, router_aux_loss_coef=0.05)),
]


@pytest.mark.parametrize("attn", IMPLS)
@pytest.mark.parametrize("family, overrides", ROUND_TRIPS, ids=[f"{f}{i}" for i, (f, _) in enumerate(ROUND_TRIPS)])
def test_family_round_trip_is_exact(family, overrides, attn):
    hf = hf_family(family, attn=attn, **overrides)
    back = to_hf(from_hf(hf), family=family, attn_implementation=attn).eval()
    assert type(back) is type(hf)
    _same_state(back.state_dict(), hf.state_dict())
    _same_config(back.config, hf.config)
    ids = tokens(hf.config.vocab_size)
    with torch.no_grad():
        # Identical weights and config (checked exactly above); the logits may differ in the last bits
        # where transformers' expert kernels sum in a thread-dependent order (Mixtral with 2+ threads).
        torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=1e-6, rtol=0)


SMALL = dict(vocab_size=256, max_seq_len=64, dim=64, n_layers=2, n_heads=4)
# Workbench configs and the transformers class to_hf must pick for each.
OURS_FAMILY_CASES = {
    "qwen3_gqa": (dict(qk_norm="head", n_kv_heads=2), "Qwen3ForCausalLM"),
    "qwen3_window_tied": (dict(qk_norm="head", window=5, tie_embeddings=True, head_dim=24), "Qwen3ForCausalLM"),
    "qwen3_options": (
        dict(qk_norm="head", norm={"name": "rmsnorm", "eps": 1e-5}, positions={"name": "rope", "theta": 5e5}, ffn="geglu"),
        "Qwen3ForCausalLM",
    ),
    "mistral_window4_mqa": (dict(window=4, n_kv_heads=1), "MistralForCausalLM"),
    "mistral_window7_tied": (dict(window=7, tie_embeddings=True, ffn="reglu", ffn_hidden_dim=80), "MistralForCausalLM"),
    "olmo2_gqa": (dict(norm_placement="reordered", qk_norm="proj", n_kv_heads=2), "Olmo2ForCausalLM"),
    "olmo2_tied_head_dim": (dict(norm_placement="reordered", qk_norm="proj", tie_embeddings=True, head_dim=24), "Olmo2ForCausalLM"),
    "mixtral_window": (dict(ffn={"name": "moe", "n_experts": 4, "top_k": 2}, window=6, ffn_hidden_dim=96), "MixtralForCausalLM"),
    "mixtral_defaults_tied": (dict(ffn="moe", tie_embeddings=True, n_kv_heads=2), "MixtralForCausalLM"),  # experts 85 wide
    "mixtral_top1": (dict(ffn={"name": "moe", "n_experts": 3, "top_k": 1, "aux_loss_coef": 0.05}), "MixtralForCausalLM"),
    "llama_plain": (dict(), "LlamaForCausalLM"),  # also a Mistral without window: LLaMA is preferred
    "mistral_dim30": (dict(dim=30, head_dim=8), "MistralForCausalLM"),  # LlamaConfig needs dim % n_heads == 0
}
# transformers' grouped_mm experts (its default for Mixtral) need 16-byte aligned widths: the odd
# widths above run with the eager experts, and this one with grouped_mm.
GROUPED_MM_CASE = dict(ffn={"name": "moe", "n_experts": 4, "top_k": 2}, ffn_hidden_dim=96, n_kv_heads=1)


@pytest.mark.parametrize("attn", IMPLS)
@pytest.mark.parametrize("case", OURS_FAMILY_CASES)
def test_ours_to_family_and_back(case, attn):
    fields, model_class = OURS_FAMILY_CASES[case]
    cfg = TransformerConfig(**{**SMALL, **fields})
    ours = TransformerLM(cfg, init_seed=0)
    _randomise_vectors(ours)
    with torch.no_grad():  # decisive routing: no near-tie of expert probabilities for rounding to flip
        for block in ours.blocks:
            if cfg.component("ffn")[0] == "moe":
                block.ffn.router.weight.mul_(10.0)
    experts = dict(experts_implementation="eager") if model_class == "MixtralForCausalLM" else {}
    hf = to_hf(ours, attn_implementation=attn, **experts).eval()
    assert type(hf).__name__ == model_class and hf.config._attn_implementation == attn
    assert_same_logits(ours, hf)
    back = from_hf(hf)
    _same_state(back.state_dict(), ours.state_dict())
    assert back.config.window == cfg.window and back.config.qk_norm == cfg.qk_norm
    assert back.config.ffn_hidden_dim == cfg.ffn_hidden_dim and back.config.head_dim == cfg.head_dim


def test_ours_to_mixtral_grouped_mm():
    ours = TransformerLM(TransformerConfig(**{**SMALL, **GROUPED_MM_CASE}), init_seed=0)
    _randomise_vectors(ours)
    hf = to_hf(ours, attn_implementation="sdpa", experts_implementation="grouped_mm").eval()
    assert hf.config._experts_implementation == "grouped_mm"
    assert_same_logits(ours, hf)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: setattr(m.blocks[0].attn, "window", 4),
        lambda m: setattr(m.blocks[0].attn, "window", 6),
        lambda m: setattr(m.blocks[1].attn, "window", None),
    ],
    ids=["window-1", "window+1", "no_window"],
)
def test_parity_check_catches_window_off_by_one(mutate):
    """Mistral's window of 5 is exactly ours: one key more or less in any layer breaks parity."""
    hf = hf_family("mistral", sliding_window=5)
    ours = from_hf(hf)
    mutate(ours)
    with pytest.raises(AssertionError):
        assert_same_logits(ours, hf)


def test_mixtral_load_balancing_loss_matches_transformers():
    """aux_loss_coef = router_aux_loss_coef * top_k: our weighted loss equals transformers' coefficient
    times its aux_loss (one layer, where transformers' all-layer average is that layer's)."""
    hf = hf_family("mixtral", num_hidden_layers=1, num_local_experts=5, num_experts_per_tok=2, router_aux_loss_coef=0.03)
    ours = from_hf(hf).train()  # the MoE computes its loss in training mode only; no dropout anywhere
    ids = tokens(hf.config.vocab_size)
    ours(ids)
    with torch.no_grad():
        theirs = hf(ids, output_router_logits=True).aux_loss
    torch.testing.assert_close(ours.blocks[0].ffn.aux_loss.detach(), 0.03 * theirs)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: hf_family("qwen3", attention_bias=True), "attention_bias"),
        (lambda: hf_family("qwen3", use_sliding_window=True, sliding_window=4, max_window_layers=1), "layer_types"),
        (lambda: hf_family("qwen3", rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}), "rope"),
        (lambda: hf_family("mistral", hidden_act="gelu_fast"), "hidden_act"),
        (lambda: hf_family("olmo2", attention_bias=True), "attention_bias"),
        (lambda: hf_family("mixtral", hidden_act="gelu"), "hidden_act"),
        (lambda: hf_family("mixtral", router_jitter_noise=0.1), "router_jitter_noise"),
    ],
    ids=["qwen3_bias", "qwen3_mixed_layers", "qwen3_rope_scaling", "mistral_act", "olmo2_bias", "mixtral_act", "mixtral_jitter"],
)
def test_family_from_hf_rejects_what_it_cannot_model(make, match):
    with pytest.raises(ValueError, match=match):
        from_hf(make())


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(norm="dyt"), r"norm='dyt': no transformers family has it"),
        (dict(positions="alibi"), r"positions='alibi': no transformers family has it"),
        (dict(norm_placement="parallel"), r"norm_placement='parallel': no transformers family has it"),
        (dict(norm_placement="sandwich"), r"norm_placement='sandwich'"),
        (dict(norm="layernorm"), r"norm='layernorm' with positions='rope': no transformers family has both"),
        (dict(norm_placement="reordered", qk_norm="head"), r"norm_placement='reordered' with qk_norm='head'"),
        (dict(norm_placement="reordered", qk_norm="proj", window=8), r"norm_placement='reordered' with window=8"),
        (dict(qk_norm="proj"), r"norm_placement='pre' with qk_norm='proj'"),
        (dict(ffn="moe", qk_norm="head"), r"ffn='moe' with qk_norm='head'"),
        (dict(ffn="moe", bias=True), r"ffn='moe' with bias=True"),
        (dict(window=8, bias=True), r"window=8 with bias=True"),
        (dict(qk_norm="head", bias=True), r"qk_norm='head' with bias=True"),
        (dict(ffn="gelu"), r"norm='rmsnorm' with ffn='gelu': no transformers family has both"),
        (dict(norm={"name": "layernorm", "bias": False}, ffn="gelu", positions="learned", bias=True), r"norm option bias=False"),
        (dict(dim=30, head_dim=8, bias=True), r"as LLaMA: dim=30 \(transformers needs a multiple of n_heads=4\)"),
    ],
)
def test_to_hf_names_the_component_in_the_way(fields, match):
    ours = TransformerLM(TransformerConfig(**{**dict(vocab_size=64, max_seq_len=16, dim=32, n_layers=1, n_heads=4), **fields}))
    with pytest.raises(ValueError, match=match):
        to_hf(ours)


def test_to_hf_reports_the_closest_family_when_no_pair_conflicts(monkeypatch):
    """Three settings that pairwise fit some family but all together none: the closest family is named."""
    import workbench.interop.convert as convert
    from workbench.interop.family import Family

    def fam(label, **accepts):
        return Family(label.lower(), label, "X", "Y", accepts, config_from_hf=None, hf_kwargs=None, layout=None)

    families = (fam("A", qk_norm=("head",), bias=(True,), window=("full",)),
                fam("B", qk_norm=("none",), bias=(True,), window=("sliding",)),
                fam("C", qk_norm=("head",), bias=(False,), window=("sliding",)))
    monkeypatch.setattr(convert, "FAMILIES", families)
    cfg = TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=1, n_heads=4, qk_norm="head", bias=True, window=4)
    with pytest.raises(ValueError, match=r"closest is A, but window=4 \(needs 'full'\)"):
        convert.family_of(cfg)


def test_to_hf_family_chooses_among_those_that_fit():
    """A Mistral without window converts to LLaMA by default and to Mistral on request; a family that
    cannot hold the model says what is in the way."""
    ours = from_hf(hf_family("mistral", sliding_window=None))
    assert type(to_hf(ours)).__name__ == "LlamaForCausalLM"
    hf = to_hf(ours, family="mistral", attn_implementation="sdpa").eval()
    assert type(hf).__name__ == "MistralForCausalLM" and hf.config.sliding_window is None
    assert_same_logits(ours, hf)
    with pytest.raises(ValueError, match=r"cannot be a transformers OLMo 2 model: norm_placement='pre' \(needs 'reordered'\), "
                                         r"qk_norm='none' \(needs 'proj'\)"):
        to_hf(ours, family="olmo2")
    with pytest.raises(ValueError, match="unknown transformers family 'gpt3'"):
        to_hf(ours, family="gpt3")


def test_mixtral_from_hf_keeps_dtype_and_expert_layout():
    """Expert e's gate and up are rows [0, w) and [w, 2w) of gate_up_proj[e]; down is down_proj[e]."""
    hf = hf_family("mixtral", num_local_experts=3).to(torch.bfloat16)
    ours = from_hf(hf)
    assert all(p.dtype == torch.bfloat16 for p in ours.parameters())
    theirs, width = hf.model.layers[1].mlp, hf.config.intermediate_size
    for e, expert in enumerate(ours.blocks[1].ffn.experts):
        assert torch.equal(expert.gate.weight, theirs.experts.gate_up_proj[e, :width])
        assert torch.equal(expert.up.weight, theirs.experts.gate_up_proj[e, width:])
        assert torch.equal(expert.down.weight, theirs.experts.down_proj[e])
    assert torch.equal(ours.blocks[1].ffn.router.weight, theirs.gate.weight)
