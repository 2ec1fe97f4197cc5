"""Attention kernels against a per-head float64 reference: GQA/MQA grouping, causality, flash."""

from __future__ import annotations

import math

import pytest
import torch

from components import FlashAttentionUnavailable, TransformerConfig, TransformerLM, registry
from components.attention import NaiveAttention, SDPAttention
from conftest import FLASH_UNAVAILABLE, requires_cuda, requires_flash

CPU_KERNELS = ["naive", "sdpa"]
HEADS = [(4, 4), (8, 2), (4, 1)]  # MHA, GQA (4 query heads per kv head), MQA


def reference(q, k, v):
    """Causal attention one (batch, head) at a time in float64; kv head j serves query heads
    j*G .. j*G+G-1 (G = H // H_kv). With S > T keys, query i sits at position S - T + i."""
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    q, k, v = q.double(), k.double(), v.double()
    out = torch.empty(B, H, T, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            j = h // (H // Hkv)
            scores = q[b, h] @ k[b, j].T / math.sqrt(D)  # (T, S)
            for i in range(T):
                scores[i, S - T + i + 1 :] = float("-inf")
            out[b, h] = torch.softmax(scores, dim=-1) @ v[b, j]
    return out


def qkv(H, Hkv, T=9, S=None, D=8, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    S = S or T
    make = lambda h, t: torch.randn(2, h, t, D, generator=g, dtype=torch.float32).to(device=device, dtype=dtype)  # noqa: E731
    return make(H, T), make(Hkv, S), make(Hkv, S)


@pytest.mark.parametrize("H, Hkv", HEADS)
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_kernel_matches_float64_reference(name, H, Hkv):
    q, k, v = qkv(H, Hkv)
    out = registry.build("attention", name)(q, k, v)
    assert out.dtype == torch.float64 and out.shape == q.shape
    # Float64 all the way: a softmax rounded through fp32 would miss this tolerance by 10^3.
    torch.testing.assert_close(out, reference(q, k, v), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("H, Hkv", HEADS)
def test_naive_and_sdpa_agree_in_fp32(H, Hkv):
    q, k, v = qkv(H, Hkv, T=33, D=16, dtype=torch.float32)
    torch.testing.assert_close(NaiveAttention()(q, k, v), SDPAttention()(q, k, v))


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_queries_after_cached_keys_see_the_whole_prefix(name):
    # 3 new queries against 7 keys: query i is at position 4 + i (bottom-right alignment, as flash-attn).
    q, k, v = qkv(4, 2, T=3, S=7)
    torch.testing.assert_close(registry.build("attention", name)(q, k, v), reference(q, k, v))


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_future_keys_do_not_change_past_outputs(name):
    kernel = registry.build("attention", name)
    q, k, v = qkv(4, 2, T=10, dtype=torch.float32)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 6:] += 5.0 * torch.randn_like(k2[:, :, 6:])
    v2[:, :, 6:] += 5.0 * torch.randn_like(v2[:, :, 6:])
    out, out2 = kernel(q, k, v), kernel(q, k2, v2)
    torch.testing.assert_close(out2[:, :, :6], out[:, :, :6])
    assert not torch.allclose(out2[:, :, 6:], out[:, :, 6:])


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_heads_must_group_evenly(name):
    q, k, v = qkv(6, 4)
    with pytest.raises(ValueError, match=r"query heads \(6\) must be a multiple of key/value heads \(4\)"):
        registry.build("attention", name)(q, k, v)


@pytest.mark.skipif(FLASH_UNAVAILABLE is None, reason="flash attention can run here")
def test_flash_fails_clearly_where_it_cannot_run():
    with pytest.raises(FlashAttentionUnavailable, match=r"pip install .*flash-attn"):
        registry.build("attention", "flash")
    # No silent fallback to another kernel: the model refuses to build.
    cfg = TransformerConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, attention="flash")
    with pytest.raises(FlashAttentionUnavailable):
        TransformerLM(cfg)


@pytest.mark.gpu
@requires_flash
@pytest.mark.parametrize("H, Hkv", HEADS)
def test_flash_matches_naive_in_bf16(H, Hkv):
    q, k, v = qkv(H, Hkv, T=128, D=64, dtype=torch.bfloat16, device="cuda")
    out = registry.build("attention", "flash")(q, k, v)
    torch.testing.assert_close(out.float().cpu(), reference(q, k, v).float(), atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
@requires_flash
def test_flash_rejects_fp32():
    q, k, v = qkv(4, 4, dtype=torch.float32, device="cuda")
    with pytest.raises(TypeError, match="fp16/bf16 only"):
        registry.build("attention", "flash")(q, k, v)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("H, Hkv", HEADS)
def test_sdpa_on_cuda_matches_reference_in_bf16(H, Hkv):
    q, k, v = qkv(H, Hkv, T=128, D=64, dtype=torch.bfloat16, device="cuda")
    out = SDPAttention()(q, k, v)
    torch.testing.assert_close(out.float().cpu(), reference(q, k, v).float(), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("H, Hkv", HEADS)
def test_sdpa_attends_bf16_in_fp32_on_cpus_without_native_bf16(H, Hkv, cached):
    # Under bf16 autocast on such a CPU the output is exactly fp32 attention rounded once to bf16,
    # gradients come back in the inputs' dtype, and the result is at least as close to float64.
    q, k, v = qkv(H, Hkv, T=5 if cached else 17, S=17, D=16, dtype=torch.bfloat16)
    slow, fast = SDPAttention(), SDPAttention()
    slow.upcast_cpu_bf16, fast.upcast_cpu_bf16 = True, False
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        upcast = slow(*leaves)
        native = fast(q, k, v)
    upcast.float().sum().backward()
    expected = SDPAttention._attend(q.float(), k.float(), v.float()).to(torch.bfloat16)
    assert upcast.dtype == torch.bfloat16 and all(t.grad.dtype == torch.bfloat16 for t in leaves)
    torch.testing.assert_close(upcast, expected, rtol=0, atol=0)
    ref = reference(q, k, v)
    assert (upcast.double() - ref).abs().max() <= (native.double() - ref).abs().max() + 1e-6


def test_sdpa_upcasts_only_where_bf16_is_emulated(monkeypatch):
    import components.attention as attention

    for native in (True, False):
        monkeypatch.setattr(attention, "cpu_has_fast_bf16", lambda native=native: native)
        assert SDPAttention().upcast_cpu_bf16 is (not native)
