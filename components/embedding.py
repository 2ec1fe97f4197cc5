"""The token embedding: ``nn.Embedding``, whose weight gradient under torch.compile is ATen's
``index_add_`` instead of inductor's.

Why: inductor lowers the embedding's backward (a scatter-add of every token's gradient row into its
vocabulary row) to one atomic add per element, 14x slower than ATen's ``index_add_`` on a 2-core CPU
at the bench's shape (4096 tokens x dim 256 into 2048 rows: 1.58 vs 0.11 ms; docs/performance.md).
Under compile the lookup is therefore an opaque custom op whose backward is another one, so
inductor builds neither. Eager mode keeps ``nn.Embedding`` as it is, bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.library.custom_op("components::embedding", mutates_args=())
def _lookup(weight: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """weight[tokens]: (..., dim) rows of the (vocab, dim) table."""
    return torch.nn.functional.embedding(tokens, weight)


@_lookup.register_fake
def _(weight, tokens):
    return weight.new_empty(*tokens.shape, weight.shape[1])


@torch.library.custom_op("components::embedding_backward", mutates_args=())
def _weight_grad(grad: torch.Tensor, tokens: torch.Tensor, rows: int) -> torch.Tensor:
    """The (rows, dim) table gradient: each token's gradient row summed into its vocabulary row."""
    dim = grad.shape[-1]
    return grad.new_zeros(rows, dim).index_add_(0, tokens.reshape(-1), grad.reshape(-1, dim))


@_weight_grad.register_fake
def _(grad, tokens, rows):
    return grad.new_empty(rows, grad.shape[-1])


def _save(ctx, inputs, output) -> None:
    weight, tokens = inputs
    ctx.save_for_backward(tokens)
    ctx.rows = weight.shape[0]


def _backward(ctx, grad):
    (tokens,) = ctx.saved_tensors
    return _weight_grad(grad, tokens, ctx.rows), None


_lookup.register_autograd(_backward, setup_context=_save)


class TokenEmbedding(nn.Embedding):
    """``nn.Embedding`` that compiles to ATen's lookup and ``index_add_`` (see the module docstring).
    Only a plain table: no padding index, norm cap or frequency scaling, which the ops do not apply."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__(num_embeddings, embedding_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return _lookup(self.weight, tokens)
        return super().forward(tokens)
