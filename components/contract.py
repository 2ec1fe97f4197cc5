"""The component contract: every property the model relies on, declared where a plugin author sees it.

docs/components.md is the full contract. Here: the two base classes a component subclasses when it
changes what the model does around it (an extra training loss, FLOPs that are not its weights).
"""

from __future__ import annotations

import torch
from torch import nn


class AuxLossSource(nn.Module):
    """A module that adds a loss to training (e.g. an MoE router's load-balancing loss).

    Its ``forward`` sets ``self.aux_loss`` to a scalar tensor, already weighted by the module's own
    coefficient, in training mode (None otherwise); ``TransformerLM.forward(tokens, targets=...)``
    adds the sum over all such modules to the language-modelling loss.
    """

    aux_loss: torch.Tensor | None = None


class SparseCompute(nn.Module):
    """A module whose per-token matmul work is not all of its weights (e.g. top-k of n experts).

    ``TransformerLM.flops_per_token`` counts ``active_matmul_params()`` for such a module instead of
    the weights of the nn.Linear layers inside it.
    """

    def active_matmul_params(self) -> int:
        """Matmul weights one token multiplies through in a forward pass."""
        raise NotImplementedError
