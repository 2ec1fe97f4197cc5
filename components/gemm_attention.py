"""Exact causal attention as batched GEMMs around a softmax, in causal query blocks, as one
``torch.library`` custom op with a hand-written backward.

What it computes is transformers' eager attention: scores = q k^T / sqrt(d) + mask, the GEMM in the
inputs' dtype (``baddbmm`` applies 1/sqrt(d) inside its accumulation) and the 0 / -inf mask added to
the keys it can mask only (``first_masked_key``: bit for bit what adding it everywhere gives, without
``baddbmm``'s copy of a whole block of bias into its output), PyTorch's softmax (fp32 inside for bf16,
rounded once), and probs @ v as a second GEMM. Key/value heads are not repeated: each kv head's group
of query heads is stacked into one GEMM against it.

Why blocks: the queries go in equal blocks of at most ``QUERY_BLOCK`` rows, each against the keys up
to its last query only, so at T = 256 the GEMMs and the softmax do 3/4 of the full (T, T) work. Each
block's rows are whole, so nothing is merged. The last block is padded with zero queries where T
does not divide; padded rows see every key (so they stay finite), and their outputs are dropped.

Why an opaque op: traced by torch.compile, every block's shapes differ, so each builds its own
softmax, softmax-backward and copy kernels, and each C++ kernel costs ~2 s of g++ on a 2-core CPU.
As an op, inductor builds none of them; it only writes the queries into the blocked layout, a copy
it fuses into the positions' kernel (the op's own copies and sums run as ATen calls). The step is
as fast as the traced version (docs/performance.md, issue 27).
"""

from __future__ import annotations

import functools
import math

import torch

from .masks import attention_bias, seen_keys

# Queries per block at most. Measured (bf16 step of the bench, AMD EPYC with avx512_bf16): 128 ->
# 1.027x eager, 1.036x compiled over one block (traced blocks); as this op, 64 -> 0.988x and 96
# (3 blocks of 86 at T = 256) -> 0.989x compiled against 128.
QUERY_BLOCK = 128


def query_blocks(T: int) -> tuple[int, int]:
    """(blocks, rows per block) for T queries: the fewest blocks of at most ``QUERY_BLOCK`` rows, all
    of one size (the last one padded)."""
    blocks = max(1, -(-T // QUERY_BLOCK))
    return blocks, block_rows(T, blocks)


def block_rows(T: int, blocks: int) -> int:
    """Rows per block when T queries go in ``blocks`` equal blocks (the last one padded)."""
    return -(-T // blocks)


def first_masked_key(rows: int, keys: int, window: int | None) -> int:
    """The first of a block's ``keys`` key columns its mask can hide: causally, a block of ``rows``
    queries (the last before key ``keys``) hides keys among its last ``rows`` only; a window from the
    first key on."""
    return 0 if window is not None else keys - rows


@functools.lru_cache(maxsize=64)
def block_bias(rows: int, real_rows: int, keys: int, window: int | None, n_rep: int, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """The 0 / -inf bias of one block from its ``first_masked_key`` on, (n_rep * rows, keys - first):
    its ``real_rows`` queries are the last before key ``keys`` (``seen_keys``' alignment), the rows
    after them are padding and see every key. Repeated for the block's ``n_rep`` stacked query heads.
    Cached: a model asks for the same few blocks every step."""
    seen = torch.ones(rows, keys, dtype=torch.bool, device=device)
    seen[:real_rows] = seen_keys(real_rows, keys, window, device)
    bias = torch.zeros(rows, keys, dtype=dtype, device=device).masked_fill_(~seen, float("-inf"))
    return bias[:, first_masked_key(rows, keys, window):].repeat(n_rep, 1)


def to_blocks(x: torch.Tensor, n_kv: int, blocks: int, rows: int) -> list[torch.Tensor]:
    """(B, H, T, D) -> ``blocks`` contiguous (B * n_kv, H // n_kv * rows, D) tensors, T zero-padded to
    blocks * rows: block b's queries of kv head g's query heads, stacked head by head (one GEMM per
    block). Separate tensors, not one blocked tensor: inductor writes each with the plain loops of
    a slice (one permuted tensor made the compiled bf16 step 2% slower)."""
    B, H, T, D = x.shape
    if blocks * rows != T:
        x = torch.nn.functional.pad(x, (0, 0, 0, blocks * rows - T))
    return [x[:, :, b * rows:(b + 1) * rows].reshape(B * n_kv, H // n_kv * rows, D).contiguous() for b in range(blocks)]


def _prefix(x: torch.Tensor, keys: int) -> torch.Tensor:
    """(G, S, D) -> its first ``keys`` rows per batch as a contiguous (G, keys, D): a batched GEMM
    copies a batch-strided operand anyway, and transposed (k^T) that copy is a slower transposing one."""
    return x if keys == x.shape[1] else x[:, :keys].contiguous()


def _spans(T: int, S: int, blocks: int, rows: int) -> list[tuple[int, int, int]]:
    """Per block: (first query row, real rows, keys it attends: those up to its last real query)."""
    return [(b * rows, min(T, (b + 1) * rows) - b * rows, S - T + min(T, (b + 1) * rows)) for b in range(blocks)]


@torch.library.custom_op("components::gemm_attention", mutates_args=())
def _attend(q: list[torch.Tensor], k: torch.Tensor, v: torch.Tensor, T: int, window: int | None
            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """q: the (B, H, T, D) queries in blocks (``to_blocks``); k, v: (B, H_kv, S, D), contiguous. Returns the
    (B, H, T, D) output (in (B, T, H, D) memory, what the output projection reads) and each block's
    probabilities, (B * H_kv, n_rep * rows, keys), kept for the backward."""
    blocks, (G, stacked, D) = len(q), q[0].shape
    B, Hkv, S, _ = k.shape
    rows = block_rows(T, blocks)
    n_rep = stacked // rows
    keys_m, values = k.view(G, S, D), v.view(G, S, D)
    out = k.new_empty(B, T, Hkv * n_rep, D)
    probs = []
    for b, (start, real, keys) in enumerate(_spans(T, S, blocks, rows)):
        scores = torch.baddbmm(q[b].new_empty(G, stacked, keys), q[b], _prefix(keys_m, keys).transpose(1, 2),
                               beta=0, alpha=1.0 / math.sqrt(D))
        scores[..., first_masked_key(rows, keys, window):] += block_bias(rows, real, keys, window, n_rep,
                                                                         q[b].dtype, q[b].device)
        p = torch.softmax(scores, dim=-1)
        block_out = torch.bmm(p, _prefix(values, keys)).view(B, Hkv * n_rep, rows, D)
        out[:, start:start + real] = block_out[:, :, :real].transpose(1, 2)
        probs.append(p)
    return out.transpose(1, 2), probs


@_attend.register_fake
def _(q, k, v, T, window):
    blocks, (G, stacked, D) = len(q), q[0].shape
    B, Hkv, S, _ = k.shape
    rows = block_rows(T, blocks)
    out = k.new_empty(B, T, Hkv * (stacked // rows), D).transpose(1, 2)
    return out, [k.new_empty(G, stacked, keys) for _, _, keys in _spans(T, S, blocks, rows)]


@torch.library.custom_op("components::gemm_attention_backward", mutates_args=())
def _attend_backward(grad: list[torch.Tensor], q: list[torch.Tensor], k: torch.Tensor, v: torch.Tensor,
                     probs: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The gradients of ``_attend`` for the output gradient in blocks (``to_blocks`` of it): (dq in
    blocks, dk, dv). Each block's are what autograd derives for its ops (bmm, softmax, baddbmm);
    blocks are taken last first, so the one that covers every key writes dk and dv and the others add."""
    B, Hkv, S, D = k.shape
    keys_m, values = k.view(B * Hkv, S, D), v.view(B * Hkv, S, D)
    alpha = 1.0 / math.sqrt(D)
    dq: list[torch.Tensor] = [None] * len(q)
    dk = dv = None
    for b in reversed(range(len(q))):
        p, keys = probs[b], probs[b].shape[-1]
        dv_b = torch.bmm(p.transpose(1, 2), grad[b])
        ds = torch._softmax_backward_data(torch.bmm(grad[b], _prefix(values, keys).transpose(1, 2)), p, -1, p.dtype)
        dq[b] = torch.baddbmm(torch.empty_like(q[b]), ds, _prefix(keys_m, keys), beta=0, alpha=alpha)
        dk_b = torch.baddbmm(torch.empty_like(dv_b), ds.transpose(1, 2), q[b], beta=0, alpha=alpha)
        if dk is None:
            dk, dv = dk_b, dv_b
        else:
            dk[:, :keys] += dk_b
            dv[:, :keys] += dv_b
    return dq, dk.view(B, Hkv, S, D), dv.view(B, Hkv, S, D)


@_attend_backward.register_fake
def _(grad, q, k, v, probs):
    return [block.new_empty(block.shape) for block in q], k.new_empty(k.shape), v.new_empty(v.shape)


def _save(ctx, inputs, output) -> None:
    q, k, v, T, _ = inputs
    ctx.T, ctx.blocks = T, len(q)
    ctx.save_for_backward(k, v, *q, *output[1])
    ctx.mark_non_differentiable(*output[1])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad, _probs_grads):
    if grad is None:  # the output took no part in what is differentiated
        return [None] * ctx.blocks, None, None, None, None
    k, v, *saved = ctx.saved_tensors
    q, probs = saved[:ctx.blocks], saved[ctx.blocks:]
    grad = to_blocks(grad, k.shape[1], ctx.blocks, block_rows(ctx.T, ctx.blocks))
    dq, dk, dv = _attend_backward(grad, q, k, v, probs)
    return dq, dk, dv, None, None


_attend.register_autograd(_backward, setup_context=_save)


def gemm_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None = None,
                   slopes: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v for (B, H, T, D) queries and (B, H_kv, S, D) keys and values
    (S >= T: query i sits at position S - T + i), as GEMMs: in query blocks through the custom op
    without ``slopes``; with ``slopes`` (ALiBi) in one block, the scores upcast to at least fp32
    before the bias is added (a bias is too coarse in bf16), as ``naive`` does."""
    if slopes is not None:
        return _alibi_attention(q, k, v, window, slopes)
    blocks, rows = query_blocks(q.shape[-2])
    out, _ = _attend(to_blocks(q, k.shape[1], blocks, rows), k.contiguous(), v.contiguous(), q.shape[-2], window)
    return out


def _alibi_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None,
                     slopes: torch.Tensor) -> torch.Tensor:
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    n_rep = H // Hkv
    dtype = torch.promote_types(q.dtype, torch.float32)
    bias = attention_bias(q, k, window, slopes, dtype).view(Hkv, n_rep * T, S)  # (H, T, S) by kv group
    scores = torch.bmm(q.reshape(B * Hkv, n_rep * T, D), k.reshape(B * Hkv, S, D).transpose(1, 2))
    scores = scores.view(B, Hkv, n_rep * T, S).to(dtype) * (1.0 / math.sqrt(D))
    probs = torch.softmax(scores + bias, dim=-1).to(q.dtype).view(B * Hkv, n_rep * T, S)
    return torch.bmm(probs, v.reshape(B * Hkv, S, D)).view(B, H, T, D)
