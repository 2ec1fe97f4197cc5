"""Next-token cross-entropy fused with the LM head, computed in row chunks.

The usual ``cross_entropy(lm_head(h).float(), y)`` materialises the whole (B*T, vocab) logit matrix
(plus an fp32 copy under autocast), then walks it again for log-softmax, the NLL, and each of their
backward passes. Here each chunk of rows goes through the LM head, log-sum-exp, and the gradient of
the loss with respect to its logits (softmax minus one-hot) while the chunk is still in cache; that
gradient immediately flows through the two backward matmuls of the head, so only (rows, vocab) logits
ever exist at once. The FLOPs are the same as the unfused path (one forward, two backward matmuls):
nothing is recomputed. The gradients of the summed loss are computed during the forward pass and scaled by
the incoming gradient over N (in fp32, so fp16 never sees the tiny scaled values) in the backward;
where no gradient is needed (eval, ``no_grad``) only the loss is computed.
Eager, each chunk's softmax is a few in-place passes; under torch.compile the same loop is traced,
so inductor fuses each chunk's softmax and its gradient into one kernel. Either way a
``torch.library`` custom op hands the gradients to autograd, so the compiled graph stays cacheable.

Numerics match the unfused path under autocast: matmuls in the autocast dtype, softmax and the loss
in fp32 (float64 inputs stay float64), weight gradients accumulated in the weight's dtype.
"""

from __future__ import annotations

import torch

from .autocast import matmul_dtype

# Rows per chunk: about this many logits per chunk (4 MiB in fp32), and at least MIN_ROWS rows
# so the matmuls stay efficient for large vocabularies. Under torch.compile eight times as many
# (32 MiB in fp32): every chunk is traced and lowered again, and at the bench's shapes (1 chunk
# instead of 8) a cold compile takes ~1.5 s less and a warm one ~0.45 s, the step unchanged or
# faster, the process's peak 24-40 MiB higher (docs/performance.md, issue 27).
CHUNK_LOGITS = 1 << 20
COMPILED_CHUNK_LOGITS = 1 << 23
MIN_ROWS = 256


def chunk_rows(n_rows: int, vocab_size: int, logits: int = CHUNK_LOGITS) -> int:
    """Rows per chunk for ``n_rows`` rows over a ``vocab_size`` vocabulary, about ``logits`` logits a chunk."""
    return max(1, min(n_rows, max(MIN_ROWS, logits // vocab_size)))


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _eager_chunk(logits: torch.Tensor, targets: torch.Tensor,
                 softmax: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(rows, vocab) logits -> summed NLL () and, with ``softmax``, d(summed NLL)/d(logits) = softmax
    - onehot in the logits' dtype, built in place in the logits' fp32 copy (or in the logits
    themselves when already so, which the caller may then overwrite). Eager code: one in-place pass
    per step.

    Below fp32 (autocast) the exponentials are computed once, exp(z - max), and the softmax is their
    quotient by the row sums (the loss's log-sum-exp is max + log(sum), as ``torch.logsumexp``
    computes it); the gradient is rounded to the matmul dtype right after, which hides that it
    differs from exp(z - lse) in the last fp32 bit. In fp32 and float64 the softmax stays
    exp(z - lse), two exponentials, so eager full-precision training keeps its bits.
    """
    z = logits.to(_accumulate_dtype(logits.dtype))
    target_logits = z.gather(1, targets[:, None]).sum()  # before z is overwritten
    if z.dtype == logits.dtype:
        lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (rows, 1)
        total, p = lse.sum() - target_logits, z.sub_(lse).exp_() if softmax else None
    else:
        top = z.amax(dim=-1, keepdim=True)  # (rows, 1)
        e = z.sub_(top).exp_()
        sums = e.sum(dim=-1, keepdim=True)  # (rows, 1)
        total, p = (top + sums.log()).sum() - target_logits, e.div_(sums) if softmax else None
    if p is None:
        return total, None
    p[torch.arange(p.shape[0], device=p.device), targets] -= 1.0
    return total, p.to(logits.dtype)


def _traced_chunk(logits: torch.Tensor, targets: torch.Tensor, softmax: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same as ``_eager_chunk``, as one pure expression that inductor compiles into one kernel
    per chunk (upcast, max, exp(z - max) once, row sums, the one-hot subtracted, the downcast),
    where eager code makes a pass over the chunk per step."""
    z = logits.to(_accumulate_dtype(logits.dtype))
    top = z.amax(dim=-1, keepdim=True)  # (rows, 1)
    e = (z - top).exp()
    sums = e.sum(dim=-1, keepdim=True)  # (rows, 1)
    total = (top + sums.log() - z.gather(1, targets[:, None])).sum()  # one reduction: no kernel of its own
    if not softmax:
        return total, None
    columns = torch.arange(z.shape[1], device=z.device)
    p = e / sums
    return total, torch.where(columns == targets[:, None], p - 1.0, p).to(logits.dtype)


@torch.library.custom_op("components::row_chunks", mutates_args=())
def _row_chunks(x: torch.Tensor, rows: int) -> list[torch.Tensor]:
    """``x.split(rows)`` as tensors of their own, for torch.compile: a kernel reading a slice has the
    slice's offset compiled into it, so each chunk would build its own copy of the same C++ kernel."""
    return [chunk.clone() for chunk in x.split(rows)]


@_row_chunks.register_fake
def _(x, rows):
    return [torch.empty_like(chunk) for chunk in x.split(rows)]


def _loss_and_grads(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int, dtype: torch.dtype,
                    need_h: bool, need_w: bool) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Each chunk's summed loss, and the gradients of the summed loss for hidden and weight (empty
    where not needed), computed chunk by chunk in one pass; no autograd graph is recorded."""
    compiling = torch.compiler.is_compiling()
    chunk = _traced_chunk if compiling else _eager_chunk
    w = weight.to(dtype)  # a copy only under autocast
    grad_w = torch.zeros_like(weight) if need_w else weight.new_empty(0)
    totals, parts = [], []  # of the loss, of grad_h
    for h, t in zip(hidden.to(dtype).split(rows), _row_chunks(targets, rows) if compiling else targets.split(rows)):
        # d(summed loss)/d(logits), in the matmul dtype. The mean's 1/n is applied in the backward,
        # in fp32: folded in here it would underflow fp16.
        chunk_total, g = chunk(h @ w.t(), t, need_h or need_w)
        totals.append(chunk_total)
        if need_h:
            parts.append(g @ w)  # (rows, dim)
        if need_w:
            if grad_w.dtype == dtype:
                grad_w.addmm_(g.t(), h)  # (vocab, dim), accumulated without a temporary
            else:  # autocast: the matmul in its dtype, the sum in the weight's (as autograd does)
                grad_w += g.t() @ h
    grad_h = torch.cat(parts).to(hidden.dtype) if need_h else hidden.new_empty(0)
    return totals, grad_h, grad_w


def _mean(totals: list[torch.Tensor], n: int) -> torch.Tensor:
    """The chunks' summed losses added in order, over ``n`` rows."""
    total = totals[0]
    for chunk_total in totals[1:]:
        total = total + chunk_total
    return total / n


@torch.library.custom_op("components::with_gradients", mutates_args=())
def _with_gradients(totals: list[torch.Tensor], n: int, hidden: torch.Tensor, weight: torch.Tensor,
                    grad_h: torch.Tensor, grad_w: torch.Tensor) -> torch.Tensor:
    """The mean loss over ``n`` rows of the chunks' summed losses ``totals``, whose gradients for
    ``hidden`` and ``weight`` are ``grad_h`` and ``grad_w`` (those of the summed loss, computed in the
    forward pass; empty where not needed) times the incoming one over ``n``.

    A ``torch.library`` custom op rather than an ``autograd.Function``: AOTAutograd's cache refuses
    graphs holding an autograd.Function, so a compiled model with one would recompile every run. The
    few scalar additions run inside it, where under torch.compile they cost no kernel to build.
    """
    return _mean(totals, n)


@_with_gradients.register_fake
def _(totals, n, hidden, weight, grad_h, grad_w):
    return torch.empty_like(totals[0])


def _save_grads(ctx, inputs, output) -> None:
    ctx.chunks, ctx.n = len(inputs[0]), inputs[1]
    ctx.save_for_backward(inputs[4], inputs[5])


def _scale_grads(ctx, grad_mean):
    """Gradients of the summed loss times the incoming one over n (fp32: a 0-d tensor, so no host
    sync, and fp16 never sees the tiny scaled values)."""
    grad_h, grad_w = ctx.saved_tensors
    grad_total = grad_mean / ctx.n
    return ([None] * ctx.chunks, None, grad_h * grad_total if grad_h.numel() else None,
            grad_w * grad_total if grad_w.numel() else None, None, None)


_with_gradients.register_autograd(_scale_grads, setup_context=_save_grads)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, without the full logit matrix.

    hidden (..., dim), weight (vocab, dim), targets (...) int64 -> scalar loss in nats (fp32, or
    float64 for float64 inputs). ``rows`` is the chunk size (default: ``chunk_rows``). Every target
    must be a valid class index (no ignore_index).
    """
    hidden = hidden.reshape(-1, hidden.shape[-1])  # (N, dim)
    targets = targets.reshape(-1)  # (N,)
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"{hidden.shape[0]} hidden rows but {targets.shape[0]} targets")
    dtype = matmul_dtype(hidden)
    rows = rows or chunk_rows(hidden.shape[0], weight.shape[0],
                              COMPILED_CHUNK_LOGITS if torch.compiler.is_compiling() else CHUNK_LOGITS)
    need_h, need_w = (torch.is_grad_enabled() and x.requires_grad for x in (hidden, weight))
    with torch.no_grad():
        totals, grad_h, grad_w = _loss_and_grads(hidden, weight, targets, rows, dtype, need_h, need_w)
    if need_h or need_w:
        return _with_gradients(totals, hidden.shape[0], hidden, weight, grad_h, grad_w)
    return _mean(totals, hidden.shape[0])
