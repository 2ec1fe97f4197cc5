"""workbench.interop against transformers itself: converted models must give the same logits.

Tiny seeded HF models with randomised norm gains and biases (so a swapped or missing tensor shows),
eager attention, fp32, tolerance 1e-4.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("case", LLAMA_CASES)
def test_llama_from_hf_logits_match(case):
    hf = llama(**LLAMA_CASES[case])
    ours = from_hf(hf)
    assert_same_logits(ours, hf)
    c = hf.config
    assert ours.config.norm_eps == c.rms_norm_eps and ours.config.kv_heads == c.num_key_value_heads
    assert ours.config.head_size == c.head_dim and ours.config.tie_embeddings == c.tie_word_embeddings
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


@pytest.mark.parametrize("case", GPT2_CASES)
def test_gpt2_from_hf_logits_match(case):
    hf = gpt2(**GPT2_CASES[case])
    ours = from_hf(hf)
    assert_same_logits(ours, hf)
    assert ours.config.positions == "learned" and ours.config.max_seq_len == hf.config.n_positions
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
    assert back.config.hidden_dim == cfg.hidden_dim and back.config.head_size == cfg.head_size


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
