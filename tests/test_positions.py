"""Position schemes: sinusoidal, RoPE and ALiBi against float64 references, learned tables, the identity."""

from __future__ import annotations

import math

import pytest
import torch

from components import (InvalidConfig, LearnedPositions, NoPositions, Positions, RotaryEmbedding, SinusoidalPositions,
                        TransformerConfig, TransformerLM, registry)
from components.attention import NaiveAttention
from components.positions import AlibiPositions, alibi_slopes


def sinusoid_reference(T, dim, offset=0, base=10000.0):
    """PE(pos, 2i) = sin(pos / base^(2i/d)), PE(pos, 2i+1) = cos(pos / base^(2i/d)) (Vaswani et al., 2017)."""
    pe = torch.empty(T, dim, dtype=torch.float64)
    for t in range(T):
        pos = offset + t
        for j in range(dim):
            angle = pos / base ** (2 * (j // 2) / dim)
            pe[t, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe


def rope_reference(x, theta=10000.0, offset=0):
    """RoPE by complex multiplication, pairing dimension i with i + D/2 (transformers' LLaMA layout)."""
    D = x.shape[-1]
    z = torch.complex(x[..., : D // 2], x[..., D // 2 :])  # (..., T, D/2)
    freqs = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # (D/2,)
    pos = torch.arange(offset, offset + x.shape[-2], dtype=torch.float64)
    z = z * torch.polar(torch.ones(len(pos), D // 2, dtype=torch.float64), torch.outer(pos, freqs))
    return torch.cat((z.real, z.imag), dim=-1)


# --- absolute ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [16, 7])
@pytest.mark.parametrize("offset", [0, 5])
def test_sinusoidal_matches_vaswani(dim, offset):
    x = torch.randn(2, 9, dim, dtype=torch.float64)
    out = SinusoidalPositions(dim).embed(x, offset)
    torch.testing.assert_close(out - x, sinusoid_reference(9, dim, offset).expand_as(x))


@pytest.mark.parametrize("init_std", [0.02, 0.1])
def test_sinusoidal_in_the_model_starts_at_the_embeddings_scale(init_std):
    # The model's table is Vaswani's scaled so its RMS is the token embeddings' init std (a learned
    # table's starting size), not 1: a unit table would swamp std-0.02 embeddings.
    cfg = TransformerConfig(vocab_size=64, max_seq_len=512, dim=64, n_layers=1, n_heads=2, positions="sinusoidal",
                            init_std=init_std)
    model = TransformerLM(cfg, init_seed=0)
    x = torch.zeros(1, 512, 64, dtype=torch.float64)
    table = model.positions.embed(x, 0)
    torch.testing.assert_close(table, init_std * math.sqrt(2) * sinusoid_reference(512, 64).unsqueeze(0))
    assert table.pow(2).mean().sqrt().item() == pytest.approx(init_std, rel=0.02)
    assert model.embed.weight.std().item() == pytest.approx(init_std, rel=0.05)


def test_sinusoidal_keeps_dtype():
    x = torch.randn(1, 4, 8, dtype=torch.bfloat16)
    assert SinusoidalPositions(8).embed(x).dtype == torch.bfloat16


def test_learned_adds_its_table():
    pos = LearnedPositions(dim=8, max_seq_len=10)
    with torch.no_grad():
        pos.weight.copy_(torch.randn(10, 8))
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(pos.embed(x), x + pos.weight[:4])
    torch.testing.assert_close(pos.embed(x, offset=6), x + pos.weight[6:10])


def test_learned_refuses_positions_past_max_seq_len():
    pos = LearnedPositions(dim=8, max_seq_len=10)
    with pytest.raises(ValueError, match="cover 10 tokens; got position 10"):
        pos.embed(torch.randn(1, 11, 8))
    with pytest.raises(ValueError, match="cover 10 tokens; got position 11"):
        pos.embed(torch.randn(1, 4, 8), offset=8)


def test_model_with_learned_positions_refuses_long_input():
    model = TransformerLM(TransformerConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, max_seq_len=8, positions="learned"))
    with pytest.raises(ValueError, match="learned positions cover 8 tokens"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_none_is_identity():
    pos = NoPositions()
    x, q, k = torch.randn(2, 4, 8), torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4)
    assert pos.embed(x, offset=3) is x
    assert pos.rotate(q, k, offset=3) == (q, k)
    assert pos.attention_slopes(q.device) is None
    assert list(pos.parameters()) == []


@pytest.mark.parametrize("name", ["none", "learned", "sinusoidal", "rope"])
def test_only_alibi_biases_attention(name):
    pos = registry.build("positions", name, dim=8, head_dim=8, max_seq_len=8, n_heads=2)
    assert pos.attention_slopes(torch.device("cpu")) is None


# --- rotary ------------------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
def test_rope_matches_complex_reference(theta):
    rope = RotaryEmbedding(16, theta=theta)
    q, k = torch.randn(2, 3, 11, 16, dtype=torch.float64), torch.randn(2, 1, 11, 16, dtype=torch.float64)
    q_rot, k_rot = rope(q, k)
    torch.testing.assert_close(q_rot, rope_reference(q, theta))
    torch.testing.assert_close(k_rot, rope_reference(k, theta))


def test_compiled_rope_rotates_and_backpropagates_as_the_reference():
    # Under torch.compile the cos/sin table is the ``components::rope_table`` op, read by the fused
    # rotation, and its backward the inverse rotation: both against the complex float64 reference.
    torch._dynamo.reset()
    rope = RotaryEmbedding(16, theta=500000.0)
    q = torch.randn(2, 3, 11, 16, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 11, 16, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 3, 11, 16, dtype=torch.float64)
    q_rot, k_rot = torch.compile(rope, fullgraph=True)(q, k, offset=4)
    torch.testing.assert_close(k_rot, rope_reference(k, 500000.0, offset=4))
    torch.testing.assert_close(q_rot, rope_reference(q, 500000.0, offset=4))
    (got,) = torch.autograd.grad(q_rot, q, upstream)
    (want,) = torch.autograd.grad(rope_reference(q, 500000.0, offset=4), q, upstream)
    torch.testing.assert_close(got, want)
    torch._dynamo.reset()


def test_rope_table_op_is_a_well_formed_custom_op():
    torch.library.opcheck(torch.ops.components.rope_table.default, (12, 8, 10000.0, torch.float32, torch.device("cpu")))


def test_rope_offset_continues_the_sequence():
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 2, 10, 8, dtype=torch.float64), torch.randn(1, 2, 10, 8, dtype=torch.float64)
    full_q, full_k = rope(q, k)
    tail_q, tail_k = rope(q[:, :, 6:], k[:, :, 6:], offset=6)
    torch.testing.assert_close(tail_q, full_q[:, :, 6:])
    torch.testing.assert_close(tail_k, full_k[:, :, 6:])
    torch.testing.assert_close(tail_q, rope_reference(q[:, :, 6:], offset=6))


def test_rope_grows_its_cache_for_longer_inputs():
    rope = RotaryEmbedding(8)
    for T in (3, 40, 7, 100):
        q = torch.randn(1, 1, T, 8, dtype=torch.float64)
        torch.testing.assert_close(rope(q, q)[0], rope_reference(q))


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    rope = RotaryEmbedding(16)
    T = 12
    q = torch.randn(16, dtype=torch.float64).expand(1, 1, T, 16)  # the same query at every position
    k = torch.randn(16, dtype=torch.float64).expand(1, 1, T, 16)
    q_rot, k_rot = rope(q, k)
    scores = (q_rot @ k_rot.transpose(-2, -1))[0, 0]  # (T, T): q at m, k at n
    q_far, k_far = rope(q, k, offset=37)
    torch.testing.assert_close((q_far @ k_far.transpose(-2, -1))[0, 0], scores)  # shift both: unchanged
    torch.testing.assert_close(scores[1:, 1:], scores[:-1, :-1])  # constant along diagonals: a function of m - n
    assert not torch.allclose(scores[0, 1:], scores[0, :-1])  # but not constant: position matters


def test_rope_preserves_norms():
    rope = RotaryEmbedding(32)
    q, k = torch.randn(2, 4, 20, 32), torch.randn(2, 4, 20, 32)
    q_rot, k_rot = rope(q, k, offset=1000)
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(k_rot.norm(dim=-1), k.norm(dim=-1))


def test_rope_computes_in_fp32_under_bf16():
    rope = RotaryEmbedding(16)
    q = torch.randn(1, 2, 300, 16).to(torch.bfloat16)  # large angles, where bf16 cos/sin would be coarse
    q_rot, _ = rope(q, q)
    assert q_rot.dtype == torch.bfloat16
    torch.testing.assert_close(q_rot, rope(q.float(), q.float())[0].to(torch.bfloat16), atol=0, rtol=0)


def test_rope_needs_even_head_dim():
    with pytest.raises(ValueError, match="even head_dim, got 7"):
        RotaryEmbedding(7)


def test_rope_cache_filled_under_inference_mode_still_trains():
    # Lightning validates (under inference_mode) before the first training step.
    rope = RotaryEmbedding(8)
    with torch.inference_mode():
        rope(torch.randn(1, 1, 16, 8), torch.randn(1, 1, 16, 8))
    q = torch.randn(1, 1, 16, 8, requires_grad=True)
    q_rot, _ = rope(q, q.detach())
    q_rot.sum().backward()
    assert q.grad is not None


# --- ALiBi -------------------------------------------------------------------------------------


def test_alibi_slopes_are_the_papers_geometric_sequence():
    # Press et al. 2022, section 3: for 8 heads 1/2, 1/4, ..., 1/256; for 16 the geometric mean is interleaved.
    assert alibi_slopes(8) == [2.0 ** -k for k in range(1, 9)]
    assert alibi_slopes(16) == [2.0 ** (-k / 2) for k in range(1, 17)]
    assert alibi_slopes(1) == [2.0 ** -8]


@pytest.mark.parametrize("n_heads", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96])
def test_alibi_slopes_match_bloom(n_heads):
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    L = 5
    bloom = build_alibi_tensor(torch.ones(1, L, dtype=torch.long), n_heads, torch.float32)  # (H, 1, L): slope_h * j
    ours = torch.tensor(alibi_slopes(n_heads), dtype=torch.float64)
    torch.testing.assert_close(bloom[:, 0, :].double(), ours[:, None] * torch.arange(L), rtol=1e-6, atol=0)
    assert len(set(alibi_slopes(n_heads))) == n_heads  # every head its own slope


@pytest.mark.parametrize("n_heads", [4, 6, 12])
def test_alibi_attention_equals_blooms_biased_softmax(n_heads):
    # BLOOM adds +slope * j (constant along each query row, so the softmax is the same as ALiBi's
    # -slope * (i - j)); the kernel fed our slopes must give BLOOM's causal attention.
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    T, D = 10, 8
    q, k, v = (torch.randn(1, n_heads, T, D, dtype=torch.float64) for _ in range(3))
    bias = build_alibi_tensor(torch.ones(1, T, dtype=torch.long), n_heads, torch.float64)  # (H, 1, T)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D) + bias[None]
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    expected = torch.softmax(scores, dim=-1) @ v
    slopes = AlibiPositions(n_heads).attention_slopes(q.device, torch.float64)
    torch.testing.assert_close(NaiveAttention()(q, k, v, slopes=slopes), expected, rtol=1e-6, atol=1e-6)


def test_alibi_neither_embeds_nor_rotates_and_keeps_float64_slopes():
    pos = registry.build("positions", "alibi", dim=8, head_dim=4, max_seq_len=8, n_heads=6)
    x, q, k = torch.randn(2, 4, 8), torch.randn(2, 6, 4, 4), torch.randn(2, 3, 4, 4)
    assert pos.embed(x, offset=3) is x and pos.rotate(q, k, offset=3) == (q, k)
    assert list(pos.parameters()) == [] and list(pos.buffers()) == [] and pos.max_len is None
    pos.to(torch.bfloat16)  # a model cast does not round the slopes
    slopes = pos.attention_slopes(torch.device("cpu"), torch.float64)
    assert slopes.dtype == torch.float64 and slopes.tolist() == alibi_slopes(6)
    assert pos.attention_slopes(torch.device("cpu")).dtype == torch.float32


def test_alibi_model_runs_far_beyond_its_training_length():
    # 4x max_seq_len: nothing to index past, and causal attention with a relative bias means a
    # prefix's logits do not depend on what follows, nor on the length of the whole input.
    cfg = TransformerConfig(vocab_size=53, max_seq_len=16, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, positions="alibi")
    model = TransformerLM(cfg, init_seed=0).double().eval()
    tokens = torch.randint(0, 53, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        long = model(tokens)
        for prefix in (1, 16, 37):
            torch.testing.assert_close(long[:, :prefix], model(tokens[:, :prefix]), rtol=1e-10, atol=1e-10)
    assert torch.isfinite(long).all()


def test_alibi_scores_favour_near_keys():
    # Equal keys: the bias alone decides, so attention decays geometrically with distance, at each head's rate.
    slopes = torch.tensor(alibi_slopes(2), dtype=torch.float64)  # 1/16, 1/256
    T = 6
    q, k = torch.zeros(1, 2, T, 4, dtype=torch.float64), torch.zeros(1, 2, T, 4, dtype=torch.float64)
    v = torch.eye(T, dtype=torch.float64)[None, None].expand(1, 2, T, T)  # output = the attention weights
    probs = NaiveAttention()(q, k, v, slopes=slopes)[0, :, -1]  # last query, (H, T)
    for h in range(2):
        ratios = probs[h, 1:] / probs[h, :-1]
        torch.testing.assert_close(ratios, torch.full((T - 1,), math.exp(float(slopes[h])), dtype=torch.float64))


# --- what a scheme declares: its length and its slopes ---------------------------------------------


def test_learned_and_alibi_declare_what_the_model_relies_on():
    assert registry.get("positions", "learned").traits["max_len"] == "max_seq_len"
    assert registry.get("positions", "alibi").traits["slopes"] is True
    assert all(registry.get("positions", n).traits["max_len"] is None for n in ("rope", "sinusoidal", "none", "alibi"))
    model = TransformerLM(TransformerConfig(vocab_size=32, dim=16, n_heads=2, n_layers=1, max_seq_len=24, positions="learned"))
    assert model.positions.max_len == 24


def test_a_scheme_with_a_fixed_length_refuses_a_longer_max_seq_len(sandbox_registry):
    @registry.register("positions", "wbtest_table8", max_len=8)
    class Table8(Positions):
        """Eight learned positions."""

        max_len = 8

    TransformerConfig(positions="wbtest_table8", max_seq_len=8)
    with pytest.raises(InvalidConfig, match=r"max_seq_len=16: positions 'wbtest_table8' encode at most 8 tokens"):
        TransformerConfig(positions="wbtest_table8", max_seq_len=16)
