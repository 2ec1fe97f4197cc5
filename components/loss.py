"""Next-token cross-entropy fused with the LM head, computed in row chunks.

The usual ``cross_entropy(lm_head(h).float(), y)`` materialises the whole (B*T, vocab) logit matrix
(plus an fp32 copy under autocast), then walks it again for log-softmax, the NLL, and each of their
backward passes. Here each chunk of rows goes through the LM head, log-sum-exp, and the gradient of
the loss with respect to its logits (softmax minus one-hot) while the chunk is still in cache; that
gradient immediately flows through the two backward matmuls of the head, so only (rows, vocab) logits
ever exist at once. The FLOPs are the same as the unfused path (one forward, two backward matmuls):
nothing is recomputed. The gradients of the summed loss are computed during the forward pass and scaled by
the incoming gradient (which carries the mean's 1/N, in fp32, so fp16 never sees the tiny scaled
values) in the backward; where no gradient is needed (eval, ``no_grad``) only the loss is computed.
It is a ``torch.library`` custom op, so torch.compile keeps it as one call and can cache the graph.

Numerics match the unfused path under autocast: matmuls in the autocast dtype, softmax and the loss
in fp32 (float64 inputs stay float64), weight gradients accumulated in the weight's dtype.
"""

from __future__ import annotations

import torch

from .autocast import matmul_dtype

# Rows per chunk: about this many logits per chunk (4 MiB in fp32), and at least MIN_ROWS rows
# so the matmuls stay efficient for large vocabularies.
CHUNK_LOGITS = 1 << 20
MIN_ROWS = 256


def chunk_rows(n_rows: int, vocab_size: int) -> int:
    """Rows per chunk for ``n_rows`` rows over a ``vocab_size`` vocabulary."""
    return max(1, min(n_rows, max(MIN_ROWS, CHUNK_LOGITS // vocab_size)))


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _chunk_nll(logits: torch.Tensor, targets: torch.Tensor, softmax: bool,
               one_exp: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(rows, vocab) logits -> summed NLL () and, with ``softmax``, the softmax (rows, vocab) in at
    least fp32, built in place in the logits' fp32 copy (or in the logits themselves when already
    so, which the caller may then overwrite).

    Below fp32 (autocast), and with ``one_exp``, the exponentials are computed once, exp(z - max),
    and the softmax is their quotient by the row sums (the loss's log-sum-exp is max + log(sum), as
    ``torch.logsumexp`` computes it). Below fp32 the gradient is rounded to the matmul dtype right
    after, which hides that it differs from exp(z - lse) in the last fp32 bit. Otherwise, in fp32
    and float64, the softmax stays exp(z - lse), two exponentials, so eager full-precision training
    is bit-identical to what it was; compiled code, whose bits differ from eager's anyway, asks for
    ``one_exp`` (``linear_cross_entropy``).
    """
    z = logits.to(_accumulate_dtype(logits.dtype))
    target_logits = z.gather(1, targets[:, None]).sum()  # before z is overwritten
    if z.dtype == logits.dtype and not one_exp:
        lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (rows, 1)
        return lse.sum() - target_logits, z.sub_(lse).exp_() if softmax else None
    top = z.amax(dim=-1, keepdim=True)  # (rows, 1)
    e = z.sub_(top).exp_()
    sums = e.sum(dim=-1, keepdim=True)  # (rows, 1)
    return (top + sums.log()).sum() - target_logits, e.div_(sums) if softmax else None


@torch.library.custom_op("components::linear_cross_entropy", mutates_args=())
def _loss_and_grads(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int, dtype: torch.dtype,
                    need_h: bool, need_w: bool, one_exp: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed loss, and the gradients of the summed loss for hidden and weight (empty where not
    needed), computed chunk by chunk in one pass.

    A ``torch.library`` custom op rather than an ``autograd.Function``: torch.compile sees one opaque
    call with a registered shape function and backward, so the compiled model stays cacheable
    (AOTAutograd's cache refuses graphs holding an autograd.Function) and nothing in it is retraced.
    """
    n = hidden.shape[0]
    w = weight.to(dtype)  # a copy only under autocast
    grad_h = torch.empty_like(hidden) if need_h else hidden.new_empty(0)
    grad_w = torch.zeros_like(weight) if need_w else weight.new_empty(0)
    total = hidden.new_zeros((), dtype=_accumulate_dtype(dtype))
    for start in range(0, n, rows):
        h = hidden[start : start + rows].to(dtype)  # (rows, dim)
        t = targets[start : start + rows]  # (rows,)
        chunk_total, g = _chunk_nll(h @ w.t(), t, need_h or need_w, one_exp)
        total += chunk_total
        if g is None:
            continue
        # d(summed loss)/d(logits) = softmax - onehot, built in place in the fp32 softmax. The 1/n
        # of the mean comes with the incoming gradient, in fp32: folded in here it would underflow fp16.
        g[torch.arange(g.shape[0], device=g.device), t] -= 1.0
        g = g.to(dtype)  # (rows, vocab)
        if need_h:
            grad_h[start : start + rows] = g @ w  # (rows, dim)
        if need_w:
            if grad_w.dtype == dtype:
                grad_w.addmm_(g.t(), h)  # (vocab, dim), accumulated without a temporary
            else:  # autocast: the matmul in its dtype, the sum in the weight's (as autograd does)
                grad_w += g.t() @ h
    return total, grad_h, grad_w


@_loss_and_grads.register_fake
def _(hidden, weight, targets, rows, dtype, need_h, need_w, one_exp):
    return (hidden.new_empty((), dtype=_accumulate_dtype(dtype)),
            torch.empty_like(hidden) if need_h else hidden.new_empty(0),
            torch.empty_like(weight) if need_w else weight.new_empty(0))


def _save_grads(ctx, inputs, output) -> None:
    ctx.save_for_backward(output[1], output[2])
    ctx.need = inputs[5:7]


def _scale_grads(ctx, grad_total, _grad_h, _grad_w):
    """Gradients of the summed loss times the incoming one (which carries the mean's 1/N, in fp32: a
    0-d tensor, so no host sync, and fp16 never sees the tiny scaled values)."""
    grad_h, grad_w = ctx.saved_tensors
    need_h, need_w = ctx.need
    return (grad_h * grad_total if need_h else None, grad_w * grad_total if need_w else None,
            None, None, None, None, None, None)


_loss_and_grads.register_autograd(_scale_grads, setup_context=_save_grads)


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
    rows = rows or chunk_rows(hidden.shape[0], weight.shape[0])
    grad = torch.is_grad_enabled()
    # Compiled, the fp32 softmax takes one exponential too (1.015x on the eager step, docs/performance.md):
    # compiled numerics differ from eager's in the last bits anyway, and eager fp32 keeps its own.
    total = _loss_and_grads(hidden, weight, targets, rows, dtype, grad and hidden.requires_grad,
                            grad and weight.requires_grad, torch.compiler.is_compiling())[0]
    return total / hidden.shape[0]
