"""The token embedding (components.embedding): eager it is ``nn.Embedding``; under torch.compile its
lookup and weight gradient are custom ops (ATen's gather and ``index_add_``), which must give the
float64 reference's values, register consistently, and be what the compiled graph calls."""

from __future__ import annotations

import copy

import pytest
import torch

from components import TransformerConfig, TransformerLM
from components import embedding
from components.embedding import TokenEmbedding


def _tokens(vocab: int, shape=(3, 7), seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, shape, generator=g)  # 21 draws from few rows: repeats


def _reference(weight: torch.Tensor, tokens: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 lookup and table gradient as one-hot matrix products."""
    one_hot = torch.nn.functional.one_hot(tokens.reshape(-1), weight.shape[0]).double()
    out = (one_hot @ weight.double()).view(*tokens.shape, -1)
    return out, one_hot.T @ grad.double().reshape(-1, grad.shape[-1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_lookup_and_gradient_match_float64_reference(dtype):
    module = TokenEmbedding(5, 4).to(dtype)
    tokens = _tokens(5)
    grad = torch.randn(*tokens.shape, 4, dtype=dtype)
    torch._dynamo.reset()
    out = torch.compile(module, backend="aot_eager", fullgraph=True)(tokens)
    out.backward(grad)
    torch._dynamo.reset()
    ref_out, ref_grad = _reference(module.weight.detach(), tokens, grad)
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(out.double(), ref_out, **tol)
    torch.testing.assert_close(module.weight.grad.double(), ref_grad, **tol)


def test_eager_is_nn_embedding_bit_for_bit():
    module = TokenEmbedding(6, 3)
    plain = torch.nn.Embedding(6, 3)
    plain.load_state_dict(module.state_dict())  # the same parameter name: checkpoints load either way
    tokens, grad = _tokens(6), torch.randn(3, 7, 3)
    for m in (module, plain):
        m(tokens).backward(grad)
    assert torch.equal(module(tokens), plain(tokens))
    assert torch.equal(module.weight.grad, plain.weight.grad)


def test_ops_are_registered_consistently():
    weight = torch.randn(5, 4, requires_grad=True)
    tokens = _tokens(5)
    torch.library.opcheck(embedding._lookup, (weight, tokens))
    torch.library.opcheck(embedding._weight_grad, (torch.randn(3, 7, 4), tokens, 5))


def test_compiled_model_calls_the_ops_and_tied_gradients_add_up():
    # A tied table gets the head's gradient and the lookup's: the op's must add to autograd's.
    cfg = TransformerConfig(vocab_size=32, max_seq_len=8, dim=16, n_layers=1, n_heads=2, tie_embeddings=True)
    eager = TransformerLM(cfg, init_seed=0)
    compiled = copy.deepcopy(eager)
    graphs = []

    def capture(gm, _inputs):
        graphs.append(gm)
        return gm.forward

    x, y = _tokens(32, (2, 8), seed=1), _tokens(32, (2, 8), seed=2)
    torch._dynamo.reset()
    torch.compile(compiled, backend=capture)(x, targets=y).backward()
    torch._dynamo.reset()
    eager(x, targets=y).backward()
    assert any("components.embedding" in str(node.target) for gm in graphs for node in gm.graph.nodes)
    torch.testing.assert_close(compiled.embed.weight.grad, eager.embed.weight.grad, rtol=1e-5, atol=1e-6)
