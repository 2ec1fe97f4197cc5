"""Mixture-of-experts FFN: top-k routing over SwiGLU experts (Shazeer et al., 2017; Mixtral, Jiang et al., 2024).

Routing follows transformers' ``MixtralSparseMoeBlock``: softmax over all expert logits (in at
least fp32), keep the top k, renormalise those k weights to sum to 1, and sum the chosen experts'
outputs with them. Training adds the Switch Transformer load-balancing loss (Fedus et al., 2021).
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from .contract import AuxLossSource, Bound, Count, NonNegative, SparseCompute
from .ffn import SwiGLU
from .registry import registry


def _linear64(layer: nn.Linear, v: torch.Tensor) -> torch.Tensor:
    y = layer.weight.double() @ v
    return y if layer.bias is None else y + layer.bias.double()


def moe_reference(module: MoE, x: torch.Tensor) -> torch.Tensor:
    """Float64, one token at a time, from the module's weights: softmax over every expert, the
    top_k largest probabilities renormalised to sum to 1, a weighted sum of silu(gate) * up -> down."""
    h = x.double().reshape(-1, x.shape[-1])  # (N, dim)
    out = torch.zeros_like(h)
    for t in range(h.shape[0]):
        logits = module.router.weight.double() @ h[t]  # (n_experts,)
        p = torch.exp(logits - logits.max())
        p = p / p.sum()
        chosen = sorted(range(module.n_experts), key=lambda e: -p[e].item())[: module.top_k]
        total = sum(p[e] for e in chosen)
        for e in chosen:
            expert = module.experts[e]
            gate = _linear64(expert.gate, h[t])
            hidden = gate / (1 + torch.exp(-gate)) * _linear64(expert.up, h[t])
            out[t] += p[e] / total * _linear64(expert.down, hidden)
    return out.reshape(x.shape)


# One module per expert: beyond this many, building the model alone takes minutes (DeepSeek-V3 routes 256).
MAX_EXPERTS = 1024
Experts = Annotated[int, Bound(ge=1, le=MAX_EXPERTS)]


@registry.register("ffn", "moe", width="glu", residual=("experts.*.down",),
                   weights={"router.weight": "output", "*.weight": "hidden", "*.bias": "input"}, reference=moe_reference)
class MoE(AuxLossSource, SparseCompute):
    """Mixtral-style mixture of SwiGLU experts, top-k routing, Switch load-balancing loss (Jiang et al., 2024).

    Each expert is a SwiGLU of width ``hidden_dim // top_k``: a token passes through top_k experts,
    so its matmul FLOPs equal those of the dense SwiGLU of width ``hidden_dim`` (plus the small
    router), and ``ffn=moe`` against ``ffn=swiglu`` compares at equal active FLOPs while the MoE
    holds about n_experts / top_k times the FFN parameters.

    Args:
        aux_loss_coef: weight of the load-balancing loss n_experts * sum_e f_e * P_e, where f_e is
            the fraction of the N * top_k token-slots routed to expert e and P_e the mean router
            probability of e; it is 1 when routing is uniform. transformers'
            ``load_balancing_loss_func`` counts f_e per token (summing to top_k), so its value is
            top_k times this one: Mixtral's ``router_aux_loss_coef`` c corresponds to c * top_k here.
    """

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False, n_experts: Experts = 8, top_k: Count = 2,
                 aux_loss_coef: NonNegative = 0.01):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"moe top_k must be in 1..n_experts={n_experts}, got {top_k}")
        if hidden_dim // top_k < 1:
            raise ValueError(f"moe hidden_dim {hidden_dim} leaves no width for each of top_k={top_k} experts")
        self.n_experts = n_experts
        self.top_k = top_k
        self.aux_loss_coef = aux_loss_coef
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(dim, hidden_dim // top_k, bias) for _ in range(n_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, x.shape[-1])  # (N, dim), N = batch * time
        probs = self.router(h).softmax(-1, dtype=torch.promote_types(h.dtype, torch.float32))  # (N, E)
        weights, chosen = probs.topk(self.top_k, dim=-1)  # (N, k)
        weights = weights / weights.sum(-1, keepdim=True)

        # Group the N * k token-slots by expert: one batched call per expert, no per-token loop.
        slot_expert = chosen.reshape(-1)  # (N * k,)
        order = torch.argsort(slot_expert, stable=True)
        counts = torch.bincount(slot_expert, minlength=self.n_experts)  # (E,)
        slot_token = order // self.top_k  # (N * k,) token of each slot, grouped by expert
        slot_weight = weights.reshape(-1)[order]
        out = torch.zeros_like(h)
        sizes = counts.tolist()
        for expert, tokens, w in zip(self.experts, slot_token.split(sizes), slot_weight.split(sizes)):
            if tokens.numel():
                y = expert(h[tokens]) * w[:, None]  # (n_e, dim)
                out.index_add_(0, tokens, y.to(out.dtype))

        if self.training:
            f = counts.to(probs.dtype) / slot_expert.numel()  # fraction of token-slots per expert
            self.aux_loss = self.aux_loss_coef * self.n_experts * (f * probs.mean(0)).sum()
        else:
            self.aux_loss = None
        return out.reshape(x.shape)

    def active_matmul_params(self) -> int:
        """The router plus top_k experts' matrices: every token goes through exactly top_k experts."""
        expert = self.experts[0]
        per_expert = sum(layer.weight.numel() for layer in (expert.gate, expert.up, expert.down))
        return self.router.weight.numel() + self.top_k * per_expert

    def extra_repr(self) -> str:
        return f"n_experts={self.n_experts}, top_k={self.top_k}, aux_loss_coef={self.aux_loss_coef}"
