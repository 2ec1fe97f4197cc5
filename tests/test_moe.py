"""Mixture-of-experts FFN: a float64 per-token reference, transformers' Mixtral block, the
load-balancing loss, gradients and the active-FLOPs count."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from components import MoE, SwiGLU, registry
from components.contract import AuxLossSource, SparseCompute
from components.moe import moe_reference

DIM, HIDDEN, EXPERTS, TOP_K = 16, 24, 4, 2


def make_moe(seed=0, **options) -> MoE:
    torch.manual_seed(seed)
    moe = MoE(DIM, HIDDEN, **{"n_experts": EXPERTS, "top_k": TOP_K, **options}).double()
    with torch.no_grad():
        for p in moe.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return moe


@pytest.fixture
def x64():
    torch.manual_seed(1)
    return torch.randn(3, 7, DIM, dtype=torch.float64)


def test_shape_of_the_experts():
    moe = MoE(DIM, HIDDEN, n_experts=EXPERTS, top_k=3)
    assert isinstance(moe, AuxLossSource) and isinstance(moe, SparseCompute)
    assert len(moe.experts) == EXPERTS and all(isinstance(e, SwiGLU) for e in moe.experts)
    assert moe.experts[0].up.out_features == HIDDEN // 3  # 1/top_k of the dense width
    assert moe.router.weight.shape == (EXPERTS, DIM) and moe.router.bias is None


@pytest.mark.parametrize("top_k, bias", [(2, False), (1, False), (3, True)])
def test_matches_per_token_reference(x64, top_k, bias):
    moe = make_moe(top_k=top_k, bias=bias).eval()
    torch.testing.assert_close(moe(x64), moe_reference(moe, x64))


def test_matches_transformers_mixtral_block(x64):
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    moe = make_moe().eval()
    config = MixtralConfig(hidden_size=DIM, intermediate_size=HIDDEN // TOP_K, num_local_experts=EXPERTS,
                           num_experts_per_tok=TOP_K)
    theirs = MixtralSparseMoeBlock(config).double().eval()
    with torch.no_grad():
        theirs.gate.weight.copy_(moe.router.weight)
        for e, expert in enumerate(moe.experts):  # transformers stores [gate; up] fused, one slice per expert
            theirs.experts.gate_up_proj[e].copy_(torch.cat([expert.gate.weight, expert.up.weight]))
            theirs.experts.down_proj[e].copy_(expert.down.weight)
    # transformers computes the routing probabilities in fp32 even for float64 inputs.
    torch.testing.assert_close(moe(x64), theirs(x64), rtol=1e-5, atol=1e-6)


def test_load_balancing_loss_matches_transformers(x64):
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    moe = make_moe(seed=3, aux_loss_coef=0.02).train()
    moe(x64)
    logits = moe.router(x64.reshape(-1, DIM))
    theirs = load_balancing_loss_func((logits,), num_experts=EXPERTS, top_k=TOP_K)
    # transformers' f_e counts per token (sums to top_k); ours is the fraction of token-slots (sums to 1).
    torch.testing.assert_close(moe.aux_loss, 0.02 * theirs.double() / TOP_K)


def test_load_balancing_loss_formula(x64):
    moe = make_moe(seed=4, aux_loss_coef=0.5).train()
    moe(x64)
    probs = torch.softmax(moe.router(x64.reshape(-1, DIM)), -1)  # (N, E)
    chosen = probs.topk(TOP_K, -1).indices
    f = torch.stack([(chosen == e).sum() for e in range(EXPERTS)]).double() / chosen.numel()
    torch.testing.assert_close(moe.aux_loss, 0.5 * EXPERTS * (f * probs.mean(0)).sum())


def test_aux_loss_only_in_training(x64):
    moe = make_moe()
    moe.train()(x64)
    assert moe.aux_loss is not None and moe.aux_loss.ndim == 0
    moe.eval()(x64)
    assert moe.aux_loss is None


def test_gradients_reach_router_and_experts(x64):
    moe = make_moe().train()
    (moe(x64).square().sum() + moe.aux_loss).backward()
    assert moe.router.weight.grad.abs().sum() > 0
    for expert in moe.experts:  # 21 tokens x 2 slots over 4 experts: every expert is chosen
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in expert.parameters())


def test_aux_loss_gradient_reaches_router(x64):
    moe = make_moe().train()
    moe(x64)
    moe.aux_loss.backward()
    assert moe.router.weight.grad.abs().sum() > 0


def test_gradients_match_finite_differences():
    torch.manual_seed(5)
    moe = MoE(6, 8, n_experts=3, top_k=2, bias=True).double().train()
    names = [name for name, _ in moe.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in moe.parameters())
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)

    def f(x, *params):
        out = functional_call(moe, dict(zip(names, params)), (x,))
        return out, moe.aux_loss

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("bias", [False, True])
def test_flops_are_the_active_experts_only(bias):
    torch.manual_seed(6)
    moe = MoE(DIM, HIDDEN, n_experts=EXPERTS, top_k=TOP_K, bias=bias)
    x = torch.randn(2, 9, DIM)
    with FlopCounterMode(display=False) as counter:
        moe(x)
    tokens = 2 * 9
    # Every token passes through exactly top_k experts, so the count is exact, whatever the imbalance.
    assert counter.get_total_flops() == 2 * tokens * moe.active_matmul_params()
    expert_params = 3 * DIM * (HIDDEN // TOP_K)
    assert moe.active_matmul_params() == EXPERTS * DIM + TOP_K * expert_params
    dense = SwiGLU(DIM, HIDDEN)
    assert TOP_K * expert_params == sum(m.weight.numel() for m in (dense.gate, dense.up, dense.down))


def test_bf16_autocast_keeps_the_input_dtype():
    torch.manual_seed(7)
    moe = MoE(DIM, HIDDEN, n_experts=EXPERTS, top_k=TOP_K)
    x = torch.randn(2, 5, DIM)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = moe(x)
    assert out.dtype == x.dtype
    torch.testing.assert_close(out, moe(x), rtol=0.05, atol=0.02)


def test_registered_with_options():
    moe = registry.build("ffn", {"name": "moe", "n_experts": 6, "top_k": 1}, dim=DIM, hidden_dim=HIDDEN, bias=False)
    assert isinstance(moe, MoE) and len(moe.experts) == 6 and moe.top_k == 1


@pytest.mark.parametrize("options", [{"top_k": 0}, {"top_k": EXPERTS + 1}, {"top_k": 3, "n_experts": 3, "hidden_dim": 2}])
def test_rejects_impossible_routing(options):
    kwargs = {"dim": DIM, "hidden_dim": HIDDEN, "n_experts": EXPERTS, **options}
    with pytest.raises(ValueError):
        MoE(**kwargs)
