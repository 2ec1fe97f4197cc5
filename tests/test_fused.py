"""The hand-written fast paths of components against independent references: the fused LM-head
cross-entropy, RMSNorm's backward and RoPE's backward (float64 formulas, autograd, gradcheck)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from components import RMSNorm, RotaryEmbedding, TransformerConfig, TransformerLM
from components.loss import COMPILED_CHUNK_LOGITS, _eager_chunk, _traced_chunk, chunk_rows, linear_cross_entropy
from components.norms import _RMSNormFunction


def _ce_problem(n=50, dim=16, vocab=33, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(2, n, dim, generator=g, dtype=dtype).requires_grad_()
    w = torch.randn(vocab, dim, generator=g, dtype=dtype).requires_grad_()
    y = torch.randint(0, vocab, (2, n), generator=g)
    return h, w, y


def _reference_ce(h, w, y):
    """log-sum-exp minus the target logit, averaged: the float64 formula, through plain autograd."""
    logits = h @ w.t()  # (2, n, vocab)
    return (torch.logsumexp(logits, -1) - logits.gather(-1, y[..., None]).squeeze(-1)).mean()


@pytest.mark.parametrize("rows", [1, 7, 64, 100, None])
def test_linear_cross_entropy_matches_the_formula_and_its_gradients(rows):
    h, w, y = _ce_problem()
    loss = linear_cross_entropy(h, w, y, rows)
    loss.backward(torch.tensor(2.5, dtype=torch.float64))  # a non-unit upstream gradient is applied
    got = (loss.detach(), h.grad, w.grad)
    h.grad = w.grad = None
    ref = _reference_ce(h, w, y)
    (2.5 * ref).backward()
    assert loss.dtype == torch.float64
    torch.testing.assert_close(got, (ref.detach(), h.grad, w.grad))


def test_linear_cross_entropy_gradcheck():
    h, w, y = _ce_problem(n=5, dim=4, vocab=7)
    assert torch.autograd.gradcheck(lambda a, b: linear_cross_entropy(a, b, y, 3), (h, w))


def test_linear_cross_entropy_without_grad_gives_the_same_loss():
    h, w, y = _ce_problem()
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, y, 8), _reference_ce(h, w, y))


def _loss_and_grads(fn, h, w):
    h.grad = w.grad = None
    loss = fn()
    loss.backward()
    return loss.detach(), h.grad.clone(), w.grad.clone()


def test_linear_cross_entropy_under_bf16_autocast_is_as_accurate_as_the_unfused_path():
    h, w, y = _ce_problem(n=300, dim=64, vocab=100, dtype=torch.float32)
    exact = _loss_and_grads(lambda: F.cross_entropy(F.linear(h, w).flatten(0, 1), y.flatten()), h, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = _loss_and_grads(lambda: linear_cross_entropy(h, w, y, 64), h, w)
        unfused = _loss_and_grads(lambda: F.cross_entropy(F.linear(h, w).float().flatten(0, 1), y.flatten()), h, w)
    assert [t.dtype for t in fused] == [torch.float32] * 3
    for got, ref, truth in zip(fused, unfused, exact):
        # bf16 matmuls either way: the fused error is of the same size as the unfused one.
        assert (got - truth).norm() <= 1.5 * (ref - truth).norm() + 1e-7
        torch.testing.assert_close(got, truth, atol=1e-3, rtol=2e-2)


@pytest.mark.parametrize("chunk", [_eager_chunk, _traced_chunk])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_chunk_gradient_and_nll_match_float64(chunk, dtype):
    # bf16 logits (autocast) and the traced (compiled) chunk take the one-exponential softmax, eager
    # fp32 exp(z - logsumexp): each gradient is the float64 softmax minus the one-hot to the logits'
    # rounding, and the summed NLL the float64 one to fp32 rounding, with or without the gradient.
    g = torch.Generator().manual_seed(0)
    logits = (8 * torch.randn(37, 300, generator=g)).to(dtype)
    targets = torch.randint(0, 300, (37,), generator=g)
    exact = logits.double()
    nll = (torch.logsumexp(exact, -1) - exact.gather(1, targets[:, None]).squeeze(1)).sum()
    total, grad = chunk(logits.clone(), targets, True)
    assert grad.dtype == dtype and total.dtype == torch.float32
    truth = torch.softmax(exact, -1) - F.one_hot(targets, 300)
    # fp32: a few roundings; bf16: the unit roundoff 2^-8 of the final rounding on top.
    rtol = 2e-6 if dtype == torch.float32 else 2 ** -8 + 2e-6
    torch.testing.assert_close(grad.double(), truth, rtol=rtol, atol=1e-9 * (dtype == torch.float32))
    torch.testing.assert_close(total.double(), nll, rtol=2e-6, atol=0)
    alone, none = chunk(logits.clone(), targets, False)
    assert none is None and torch.equal(alone, total)


def test_the_losss_custom_ops_are_well_formed():
    # Registered shapes (fake tensors), schema and backward agree with what the ops compute, so
    # torch.compile traces them as it runs them.
    h, w, y = _ce_problem(n=6, dim=4, vocab=7)
    h = h.flatten(0, 1).detach().requires_grad_()
    totals = [torch.tensor(3.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)]
    grads = (torch.randn_like(h), torch.randn_like(w))
    torch.library.opcheck(torch.ops.components.with_gradients.default, (totals, 6, h, w, *grads))
    torch.library.opcheck(torch.ops.components.row_chunks.default, (y.flatten(), 5))


def test_with_gradients_is_the_mean_and_scales_the_precomputed_gradients_by_the_incoming_one_over_n():
    h, w = torch.randn(3, 2, requires_grad=True), torch.randn(5, 2, requires_grad=True)
    grad_h, grad_w = torch.randn(3, 2), torch.randn(5, 2)
    mean = torch.ops.components.with_gradients([torch.tensor(1.5), torch.tensor(4.5)], 3, h, w, grad_h, grad_w)
    assert mean.item() == 2.0
    (0.25 * mean).backward()
    assert torch.equal(h.grad, grad_h * (0.25 / 3)) and torch.equal(w.grad, grad_w * (0.25 / 3))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_loss_and_gradients_match_the_eager_ones_for_uneven_chunks(precision):
    # Compiled, the chunk loop is traced (one fused kernel per chunk, the targets split by an op of
    # their own); a last chunk shorter than the others and a non-unit upstream gradient included.
    torch._dynamo.reset()
    h, w, y = _ce_problem(n=50, dim=16, vocab=33, dtype=torch.float32)
    results = []
    for fn in (linear_cross_entropy, torch.compile(linear_cross_entropy, fullgraph=True)):
        h.grad = w.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = fn(h, w, y, 32)
        (3.0 * loss).backward()
        results.append((loss.detach(), h.grad.clone(), w.grad.clone()))
    tol = {"atol": 1e-5, "rtol": 1e-5} if precision == "fp32" else {"atol": 1e-3, "rtol": 1e-2}
    torch.testing.assert_close(results[1], results[0], **tol)
    torch._dynamo.reset()


def test_chunk_rows_bounds():
    assert chunk_rows(10, 2048) == 10  # never more rows than there are
    assert chunk_rows(100_000, 2048) == (1 << 20) // 2048
    assert chunk_rows(100_000, 2048, COMPILED_CHUNK_LOGITS) == (1 << 23) // 2048
    assert chunk_rows(100_000, 10**6) == 256  # big vocabularies keep efficient matmuls


def test_compiled_loss_takes_the_larger_chunks():
    # Traced, every chunk is lowered again: the compiled loss splits into COMPILED_CHUNK_LOGITS chunks.
    torch._dynamo.reset()
    h, w, y = _ce_problem(n=1024, dim=8, vocab=8192, dtype=torch.float32)  # 2048 rows
    split_rows = []

    def backend(gm, example_inputs):
        split_rows.extend(n.args[1] for n in gm.graph.nodes if n.target is torch.ops.components.row_chunks.default)
        return gm.forward

    torch.compile(linear_cross_entropy, backend=backend, fullgraph=True)(h, w, y)
    assert split_rows == [chunk_rows(2048, 8192, COMPILED_CHUNK_LOGITS)] == [1024]
    assert chunk_rows(2048, 8192) == 256  # eager: 8 chunks
    torch._dynamo.reset()


def test_model_loss_equals_cross_entropy_of_its_logits_for_tied_and_untied_heads():
    for tie in (False, True):
        cfg = TransformerConfig(vocab_size=97, max_seq_len=16, dim=32, n_layers=2, n_heads=2, tie_embeddings=tie)
        model = TransformerLM(cfg, init_seed=0).double()
        x, y = torch.randint(0, 97, (3, 16)), torch.randint(0, 97, (3, 16))
        loss = model(x, targets=y)
        loss.backward()
        fused = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        ref = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        ref.backward()
        torch.testing.assert_close(loss, ref)
        for a, p in zip(fused, model.parameters()):
            torch.testing.assert_close(a, p.grad)


def _rmsnorm_formula(x, w, eps):
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w


def test_rmsnorm_backward_matches_the_formula_through_autograd():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=g, dtype=torch.float64, requires_grad=True)
    norm = RMSNorm(16, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(1 + 0.3 * torch.randn(16, generator=g, dtype=torch.float64))
    upstream = torch.randn(3, 5, 16, generator=g, dtype=torch.float64)
    norm(x).backward(upstream)
    got = (x.grad, norm.weight.grad)
    x.grad, norm.weight.grad = None, None
    _rmsnorm_formula(x, norm.weight, 1e-5).backward(upstream)
    torch.testing.assert_close(got, (x.grad, norm.weight.grad))


def test_rmsnorm_gradcheck():
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _RMSNormFunction.apply(a, b, 1e-6), (x, w))


def test_rmsnorm_takes_the_fast_path_in_fp32_and_the_formula_in_bf16():
    norm = RMSNorm(8)
    assert norm(torch.randn(2, 8, requires_grad=True)).grad_fn.name().endswith("_RMSNormFunctionBackward")
    assert "RMSNormFunction" not in norm(torch.randn(2, 8, requires_grad=True).to(torch.bfloat16)).grad_fn.name()


def test_rope_gradcheck_and_backward_is_the_inverse_rotation():
    rope = RotaryEmbedding(8)
    q = torch.randn(1, 2, 5, 8, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rope(a, b, offset=3), (q, k))
    # Rotations are orthogonal: the gradient of <rot(q), rot(g)> w.r.t. q is rot^T rot g = g.
    upstream = torch.randn_like(q)
    (rope(q, q.detach())[0] * rope(upstream, upstream)[0]).sum().backward()
    torch.testing.assert_close(q.grad, upstream)


def test_rope_bf16_gradient_is_the_fp32_gradient_rounded():
    rope = RotaryEmbedding(16)
    q32 = torch.randn(1, 2, 40, 16).to(torch.bfloat16).float().requires_grad_()
    q16 = q32.detach().to(torch.bfloat16).requires_grad_()
    upstream = torch.randn(1, 2, 40, 16).to(torch.bfloat16)
    rope(q32, q32.detach())[0].backward(upstream.float())
    rope(q16, q16.detach())[0].backward(upstream)
    assert q16.grad.dtype == torch.bfloat16
    torch.testing.assert_close(q16.grad, q32.grad.to(torch.bfloat16), atol=0, rtol=0)
