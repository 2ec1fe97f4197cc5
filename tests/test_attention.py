"""Attention kernels against a per-head float64 reference: GQA/MQA grouping, causality, flash."""

from __future__ import annotations

import math

import pytest
import torch

import components.attention as attention
import components.gemm_attention as gemm_attention
from components import FlashAttentionUnavailable, InvalidConfig, TransformerConfig, TransformerLM, registry
from components.attention import GEMM_MAX_KEYS, NaiveAttention, SDPAttention, causal_mask
from components.positions import alibi_slopes
from conftest import FLASH_UNAVAILABLE, requires_cuda, requires_flash

# sdpa as the rule picks on this CPU, and each of its two paths forced (the rule picks by CPU kind).
CPU_KERNELS = ["naive", "sdpa", pytest.param({"name": "sdpa", "path": "fused"}, id="sdpa-fused"),
               pytest.param({"name": "sdpa", "path": "gemm"}, id="sdpa-gemm")]
HEADS = [(4, 4), (8, 2), (4, 1)]  # MHA, GQA (4 query heads per kv head), MQA


def reference(q, k, v, window=None, slopes=None):
    """Causal attention one (batch, head, query) at a time in float64; kv head g serves query heads
    g*G .. g*G+G-1 (G = H // H_kv). With S > T keys, query i sits at position p = S - T + i and sees
    keys j <= p, only p - window < j with a window; ALiBi adds -slopes[h] * (p - j) to each score."""
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    q, k, v = q.double().cpu(), k.double().cpu(), v.double().cpu()
    out = torch.empty(B, H, T, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            g = h // (H // Hkv)
            for i in range(T):
                p = S - T + i
                first = 0 if window is None else max(0, p - window + 1)
                scores = k[b, g, first : p + 1] @ q[b, h, i] / math.sqrt(D)  # (keys seen,)
                if slopes is not None:
                    scores -= float(slopes[h]) * torch.arange(p - first, -1, -1, dtype=torch.float64)  # p - j
                out[b, h, i] = torch.softmax(scores, dim=0) @ v[b, g, first : p + 1]
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


# --- sliding window and ALiBi slopes -----------------------------------------------------------

OPTIONS = [  # (window, slopes?)
    (1, False), (3, False), (None, True), (4, True),
]


def slopes_for(H, use):
    return torch.tensor(alibi_slopes(H), dtype=torch.float64) if use else None


@pytest.mark.parametrize("window, alibi", OPTIONS)
@pytest.mark.parametrize("T, S", [(9, 9), (3, 7)])  # full sequence; 3 queries after 4 cached keys
@pytest.mark.parametrize("H, Hkv", HEADS)
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_window_and_slopes_match_float64_reference(name, H, Hkv, T, S, window, alibi):
    q, k, v = qkv(H, Hkv, T=T, S=S)
    slopes = slopes_for(H, alibi)
    out = registry.build("attention", name)(q, k, v, window=window, slopes=slopes)
    assert out.dtype == torch.float64 and out.shape == q.shape
    torch.testing.assert_close(out, reference(q, k, v, window, slopes), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_arbitrary_slopes_per_head(name):
    q, k, v = qkv(4, 2, T=11)
    slopes = torch.tensor([0.0, 0.3, 1.7, 5.0], dtype=torch.float64)  # 0: no bias on head 0
    out = registry.build("attention", name)(q, k, v, slopes=slopes)
    torch.testing.assert_close(out, reference(q, k, v, slopes=slopes), rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(out[:, 0], reference(q, k, v)[:, 0], rtol=1e-11, atol=1e-11)


def test_window_matches_transformers_mistral_mask():
    from transformers.masking_utils import sdpa_mask, sliding_window_causal_mask_function

    for T, S in [(6, 6), (3, 8), (1, 5)]:
        q, k, _ = qkv(2, 2, T=T, S=S)
        for window in (1, 2, 3, 6, 10):
            theirs = sdpa_mask(batch_size=1, q_length=T, kv_length=S, q_offset=S - T, allow_is_causal_skip=False,
                               mask_function=sliding_window_causal_mask_function(window))[0, 0]
            assert torch.equal(causal_mask(q, k, window), theirs), (T, S, window)


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_window_of_one_attends_to_itself_only(name):
    q, k, v = qkv(4, 2, T=7)
    out = registry.build("attention", name)(q, k, v, window=1)
    torch.testing.assert_close(out, v.repeat_interleave(2, dim=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_window_at_least_the_length_is_full_causal_attention(name):
    kernel = registry.build("attention", name)
    q, k, v = qkv(4, 2, T=3, S=8)
    full = kernel(q, k, v)
    for window in (8, 9, 100):
        torch.testing.assert_close(kernel(q, k, v, window=window), full, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(kernel(q, k, v, window=7), full)  # the first query (position 5) sees 6 keys


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_keys_before_the_window_do_not_matter(name):
    kernel = registry.build("attention", name)
    q, k, v = qkv(4, 2, T=10, dtype=torch.float32)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, :3] += 5.0 * torch.randn_like(k2[:, :, :3])  # keys 0..2: outside every window of 4 from query 6 on
    v2[:, :, :3] += 5.0 * torch.randn_like(v2[:, :, :3])
    out, out2 = kernel(q, k, v, window=4), kernel(q, k2, v2, window=4)
    torch.testing.assert_close(out2[:, :, 6:], out[:, :, 6:])
    assert not torch.allclose(out2[:, :, 5], out[:, :, 5])  # query 5 still sees key 2


@pytest.mark.parametrize("window", [0, -2, 2.5, True])
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_window_must_be_a_positive_integer(name, window):
    q, k, v = qkv(2, 2)
    with pytest.raises(ValueError, match="window must be a positive integer"):
        registry.build("attention", name)(q, k, v, window=window)


def test_sdpa_keeps_its_is_causal_fast_path_without_options(monkeypatch):

    calls = []
    real = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    q, k, v = qkv(4, 2)
    kernel = SDPAttention()
    kernel(q, k, v)
    kernel(q, k, v, window=3)
    kernel(q, k, v, slopes=slopes_for(4, True))
    assert calls[0]["is_causal"] is True and "attn_mask" not in calls[0]
    assert calls[1]["attn_mask"].dtype == torch.bool and calls[1]["attn_mask"].shape == (9, 9)
    assert calls[2]["attn_mask"].dtype == torch.float64 and calls[2]["attn_mask"].shape == (1, 4, 9, 9)


@pytest.mark.parametrize("H, Hkv", HEADS)
def test_naive_and_sdpa_agree_with_options_in_bf16(H, Hkv):
    q, k, v = qkv(H, Hkv, T=40, D=16, dtype=torch.bfloat16)
    slopes = slopes_for(H, True).float()
    ref = reference(q, k, v, 12, slopes)
    for kernel in (NaiveAttention(), SDPAttention(), SDPAttention(path="gemm"), SDPAttention(path="fused")):
        out = kernel(q, k, v, window=12, slopes=slopes)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.double(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_gradients_flow_through_window_and_slopes(name):
    q, k, v = (t.float().requires_grad_() for t in qkv(4, 2, T=8))
    slopes = slopes_for(4, True).float()
    registry.build("attention", name)(q, k, v, window=3, slopes=slopes).pow(2).sum().backward()
    qd, kd, vd = (t.detach().double().requires_grad_() for t in (q, k, v))
    reference(qd, kd, vd, 3, slopes.double()).pow(2).sum().backward()
    for ours, ref in ((q, qd), (k, kd), (v, vd)):
        torch.testing.assert_close(ours.grad.double(), ref.grad, atol=1e-5, rtol=1e-4)


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
@pytest.mark.parametrize("window, alibi", OPTIONS)
@pytest.mark.parametrize("T, S", [(128, 128), (16, 128)])
@pytest.mark.parametrize("H, Hkv", HEADS)
def test_flash_window_and_slopes_match_reference_in_bf16(H, Hkv, T, S, window, alibi):
    q, k, v = qkv(H, Hkv, T=T, S=S, D=64, dtype=torch.bfloat16, device="cuda")
    window = None if window is None else 8 * window  # several keys either side of every boundary
    slopes = None if not alibi else slopes_for(H, True).to(device="cuda", dtype=torch.float32)
    out = registry.build("attention", "flash")(q, k, v, window=window, slopes=slopes)
    torch.testing.assert_close(out.float().cpu(), reference(q, k, v, window, slopes).float(), atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("window, alibi", OPTIONS)
@pytest.mark.parametrize("H, Hkv", HEADS)
def test_sdpa_on_cuda_window_and_slopes_match_reference_in_bf16(H, Hkv, window, alibi):
    q, k, v = qkv(H, Hkv, T=128, D=64, dtype=torch.bfloat16, device="cuda")
    window = None if window is None else 8 * window
    slopes = None if not alibi else slopes_for(H, True).to(device="cuda", dtype=torch.float32)
    out = SDPAttention()(q, k, v, window=window, slopes=slopes)
    torch.testing.assert_close(out.float().cpu(), reference(q, k, v, window, slopes).float(), atol=2e-2, rtol=2e-2)


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
    slow, fast = SDPAttention(), SDPAttention(path="fused")
    slow.native_cpu_bf16, fast.native_cpu_bf16 = False, True
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

    for native in (True, False):
        monkeypatch.setattr(attention, "cpu_has_fast_bf16", lambda native=native: native)
        assert SDPAttention().native_cpu_bf16 is native


# --- sdpa's choice between the fused kernel and GEMMs (issue 27) ----------------------------------


def test_sdpa_takes_gemms_only_for_short_bf16_without_alibi_on_native_bf16_cpus():
    kernel = SDPAttention()
    bf16 = qkv(4, 2, T=3, S=GEMM_MAX_KEYS, D=8, dtype=torch.bfloat16)
    longer = qkv(4, 2, T=3, S=GEMM_MAX_KEYS + 1, D=8, dtype=torch.bfloat16)
    fp32 = qkv(4, 2, T=3, S=GEMM_MAX_KEYS, D=8, dtype=torch.float32)
    slopes = slopes_for(4, True).float()
    for native in (True, False):
        kernel.native_cpu_bf16 = native
        assert kernel.takes_gemms(*bf16[:2], None) is native
        assert not kernel.takes_gemms(*longer[:2], None)
        assert not kernel.takes_gemms(*fp32[:2], None)  # fp32 keeps the fused kernel, and its numerics
        assert not kernel.takes_gemms(*bf16[:2], slopes)
    for path, expected in (("gemm", True), ("fused", False)):
        forced = SDPAttention(path=path)
        assert all(forced.takes_gemms(*t[:2], s) is expected for t in (bf16, longer, fp32) for s in (None, slopes))


def test_sdpa_path_option_is_checked():
    cfg = TransformerConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, attention={"name": "sdpa", "path": "gemm"})
    assert isinstance(TransformerLM(cfg).blocks[0].attn.kernel, SDPAttention)
    with pytest.raises(InvalidConfig, match=r"option path='fast' must be 'auto' \| 'fused' \| 'gemm'"):
        TransformerConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, attention={"name": "sdpa", "path": "fast"})


@pytest.mark.parametrize("window, alibi", OPTIONS + [(None, False)])
@pytest.mark.parametrize("T, S", [(40, 40), (5, 40), (40, 56)])
@pytest.mark.parametrize("query_block", [gemm_attention.QUERY_BLOCK, 16])  # 16: 3 blocks of 14 at T = 40, padded to 42
@pytest.mark.parametrize("H, Hkv", HEADS)
def test_sdpa_gemms_in_bf16_are_as_accurate_as_naive_forward_and_backward(H, Hkv, query_block, T, S, window, alibi,
                                                                          monkeypatch):
    # Both round the scores to bf16 and the probabilities once; the fused kernel keeps fp32 scores.
    monkeypatch.setattr(gemm_attention, "QUERY_BLOCK", query_block)
    q, k, v = qkv(H, Hkv, T=T, S=S, D=16, dtype=torch.bfloat16)
    slopes = slopes_for(H, alibi)
    slopes = None if slopes is None else slopes.float()
    upstream = torch.randn(q.shape, generator=torch.Generator().manual_seed(1))
    leaves = [t.double().requires_grad_() for t in (q, k, v)]
    reference(*leaves, window, slopes).backward(upstream.double())
    truth = [t.grad for t in leaves]
    scale = max(g.abs().max().item() for g in truth)  # q's and k's are zero where each query sees one key
    errors = {}
    for name, kernel in (("gemm", SDPAttention(path="gemm")), ("naive", NaiveAttention())):
        mine = [t.clone().requires_grad_() for t in (q, k, v)]
        out = kernel(*mine, window=window, slopes=slopes)
        out.backward(upstream.to(out.dtype))
        assert out.dtype == torch.bfloat16 and all(t.grad.dtype == torch.bfloat16 for t in mine)
        torch.testing.assert_close(out.double(), reference(q, k, v, window, slopes), atol=3e-2, rtol=3e-2)
        errors[name] = max((t.grad.double() - g).abs().max().item() for t, g in zip(mine, truth)) / scale
    assert errors["gemm"] <= 2 * errors["naive"] + 2e-3 and errors["gemm"] < 2e-2, errors


@pytest.mark.parametrize("path", ["gemm", "fused"])
def test_sdpa_traces_without_graph_break(path):
    # torch.compile sees one branch: the choice reads dtypes, devices and sizes only.
    kernel = SDPAttention(path=path)
    q, k, v = qkv(4, 2, T=12, D=16, dtype=torch.bfloat16)
    torch._dynamo.reset()
    compiled = torch.compile(kernel, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(q, k, v, window=5), kernel(q, k, v, window=5), rtol=0, atol=0)
    torch._dynamo.reset()
