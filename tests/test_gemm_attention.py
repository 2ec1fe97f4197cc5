"""The GEMM attention op (components.gemm_attention): equal padded query blocks against the float64
reference, its hand-written backward against autograd's numerical one, its registration, and the
sdpa rule that sends fp32 to it only under torch.compile."""

from __future__ import annotations

import pytest
import torch

import components.gemm_attention as gemm_attention
from components.attention import GEMM_MAX_KEYS, SDPAttention
from components.gemm_attention import query_blocks, to_blocks
from components.masks import seen_keys
from test_attention import HEADS, qkv, reference


@pytest.mark.parametrize("T, blocks, rows", [(1, 1, 1), (4, 1, 4), (5, 2, 3), (8, 2, 4), (9, 3, 3), (10, 3, 4)])
def test_query_blocks_are_the_fewest_equal_blocks_of_at_most_query_block_rows(monkeypatch, T, blocks, rows):
    monkeypatch.setattr(gemm_attention, "QUERY_BLOCK", 4)
    assert query_blocks(T) == (blocks, rows)


@pytest.mark.parametrize("H, Hkv", HEADS)
@pytest.mark.parametrize("T, S", [(9, 9), (10, 10), (10, 16), (1, 7)])  # 10: the last block padded
@pytest.mark.parametrize("window", [None, 1, 3])  # 1: a padded row would see no key if it were masked
def test_blocks_match_float64_reference_forward_and_backward(monkeypatch, H, Hkv, T, S, window):
    monkeypatch.setattr(gemm_attention, "QUERY_BLOCK", 4)
    q, k, v = (t.requires_grad_() for t in qkv(H, Hkv, T=T, S=S))
    upstream = torch.randn(q.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = gemm_attention.gemm_attention(q, k, v, window)
    mine = torch.autograd.grad(out, (q, k, v), upstream)
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    theirs = torch.autograd.grad(reference(*leaves, window), leaves, upstream)
    torch.testing.assert_close(out, reference(q.detach(), k.detach(), v.detach(), window), rtol=1e-11, atol=1e-11)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("T, S, window", [(10, 10, None), (10, 16, None), (9, 9, None), (10, 16, 3)])
def test_the_mask_on_the_keys_it_can_hide_gives_the_bits_of_a_whole_block_mask(monkeypatch, T, S, window):
    # The op adds each block's mask from its first_masked_key on; baddbmm with the block's whole bias
    # (what transformers' eager attention computes) must give the same bf16 probabilities, bit for bit.
    monkeypatch.setattr(gemm_attention, "QUERY_BLOCK", 4)
    H, Hkv, D = 4, 2, 8
    q, k, v = qkv(H, Hkv, T=T, S=S, D=D, dtype=torch.bfloat16)
    blocks, rows = query_blocks(T)
    blocked = to_blocks(q, Hkv, blocks, rows)
    _, probs = gemm_attention._attend(blocked, k, v, T, window)
    keys_m = k.reshape(-1, S, D)
    for (_, real, keys), q_block, p in zip(gemm_attention._spans(T, S, blocks, rows), blocked, probs):
        seen = torch.ones(rows, keys, dtype=torch.bool)
        seen[:real] = seen_keys(real, keys, window, q.device)
        bias = torch.zeros(rows, keys, dtype=q.dtype).masked_fill(~seen, float("-inf")).repeat(H // Hkv, 1)
        scores = torch.baddbmm(bias, q_block, keys_m[:, :keys].transpose(1, 2), alpha=D ** -0.5)
        assert torch.equal(p, torch.softmax(scores, dim=-1))


def test_backward_passes_gradcheck(monkeypatch):
    monkeypatch.setattr(gemm_attention, "QUERY_BLOCK", 2)  # 3 blocks of 2 rows, the last padded
    q, k, v = (t.requires_grad_() for t in qkv(4, 2, T=5, S=7, D=4))
    assert torch.autograd.gradcheck(lambda q, k, v: gemm_attention.gemm_attention(q, k, v, 3), (q, k, v))


def test_ops_are_registered_consistently(monkeypatch):
    # Fake (meta) shapes and strides, autograd registration and schema, as torch.compile relies on them.
    monkeypatch.setattr(gemm_attention, "QUERY_BLOCK", 4)
    q, k, v = qkv(4, 2, T=10, S=13)
    blocks, rows = query_blocks(10)
    blocked = [block.requires_grad_() for block in to_blocks(q, 2, blocks, rows)]
    torch.library.opcheck(gemm_attention._attend, (blocked, k.requires_grad_(), v.requires_grad_(), 10, 3))
    out, probs = gemm_attention._attend(blocked, k, v, 10, 3)
    grad = to_blocks(torch.randn(out.shape, dtype=out.dtype), 2, blocks, rows)
    args = (grad, [block.detach() for block in blocked], k.detach(), v.detach(), probs)
    torch.library.opcheck(gemm_attention._attend_backward, args)


def test_output_is_laid_out_for_the_output_projection():
    # (B, T, H, D) in memory: the projection's (B, T, H * D) input is a view, not a copy.
    q, k, v = qkv(4, 2, T=6, D=8)
    out = gemm_attention.gemm_attention(q, k, v)
    assert out.shape == q.shape and out.transpose(1, 2).is_contiguous()


def test_compiled_graph_matches_eager(monkeypatch):
    # Through AOTAutograd (fake tensors, the registered backward) without building C++ kernels.
    monkeypatch.setattr(gemm_attention, "QUERY_BLOCK", 4)
    q, k, v = (t.float().requires_grad_() for t in qkv(4, 2, T=10, S=10))
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    torch._dynamo.reset()
    compiled = torch.compile(lambda q, k, v: gemm_attention.gemm_attention(q, k, v, 3), backend="aot_eager", fullgraph=True)
    compiled(*leaves).square().sum().backward()
    gemm_attention.gemm_attention(q, k, v, 3).square().sum().backward()
    torch._dynamo.reset()
    for mine, eager in zip(leaves, (q, k, v)):
        torch.testing.assert_close(mine.grad, eager.grad, rtol=1e-6, atol=1e-6)


def _takes_gemms_compiled(kernel: SDPAttention, q, k, v) -> bool:
    """Whether torch.compile's graph of ``kernel`` calls the GEMM attention op."""
    graphs = []

    def capture(gm, _inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    torch.compile(kernel, backend=capture, fullgraph=True)(q, k, v)
    torch._dynamo.reset()
    return any("gemm_attention" in str(node.target) for gm in graphs for node in gm.graph.nodes)


@pytest.mark.parametrize("native", [True, False])
def test_sdpa_sends_fp32_to_the_gemms_only_when_compiled_on_native_bf16_cpus(native):
    kernel = SDPAttention()
    kernel.native_cpu_bf16 = native
    q, k, v = qkv(4, 2, T=6, D=8, dtype=torch.float32)
    assert not kernel.takes_gemms(q, k, None)  # eager fp32 keeps the fused kernel, and its bits
    assert _takes_gemms_compiled(kernel, q, k, v) is native
    longer = qkv(4, 2, T=2, S=GEMM_MAX_KEYS + 1, D=8, dtype=torch.float32)
    assert not _takes_gemms_compiled(kernel, *longer)
    assert not _takes_gemms_compiled(kernel, *qkv(4, 2, T=6, D=8))  # float64: always fused
