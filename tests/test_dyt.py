"""DyT (Zhu et al., 2025) against its float64 formula; gradients, init, precision handling."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.func import functional_call

from components import DyT, registry
from test_norms import DIM, randomise, x64  # noqa: F401 (x64 is a fixture)


def dyt_formula(x, alpha, weight, bias):
    y = weight * torch.tanh(alpha * x)
    return y if bias is None else y + bias


@pytest.mark.parametrize("bias", [True, False])
def test_dyt_matches_formula(x64, bias):
    norm = randomise(DyT(DIM, bias=bias).double())
    torch.testing.assert_close(norm(x64), dyt_formula(x64, norm.alpha, norm.weight, norm.bias))


def test_registered_and_built_by_name(x64):
    norm = registry.build("norm", "dyt", dim=DIM)
    assert isinstance(norm, DyT)
    assert registry.build("norm", {"name": "dyt", "alpha_init": 0.2}, dim=DIM).alpha.item() == pytest.approx(0.2)


def test_takes_no_eps():
    """Nothing is divided, so there is no eps to set; the config layer rejects a user's norm_eps."""
    assert "eps" not in inspect.signature(DyT).parameters
    with pytest.raises(TypeError):
        registry.build("norm", {"name": "dyt", "eps": 1e-5}, dim=DIM)


def test_init_and_reset_parameters():
    norm = DyT(DIM, alpha_init=0.8)
    expected = {"alpha": torch.full((1,), 0.8), "weight": torch.ones(DIM), "bias": torch.zeros(DIM)}
    for name, value in expected.items():
        torch.testing.assert_close(getattr(norm, name).detach(), value)
    randomise(norm).reset_parameters()
    for name, value in expected.items():
        torch.testing.assert_close(getattr(norm, name).detach(), value)
    assert [name for name, _ in DyT(DIM, bias=False).named_parameters()] == ["alpha", "weight"]


@pytest.mark.parametrize("bias", [True, False])
def test_gradients_match_finite_differences(bias):
    torch.manual_seed(1)
    norm = randomise(DyT(8, bias=bias).double())
    names = [name for name, _ in norm.named_parameters()]
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_(True) for p in norm.parameters())

    def f(x, *params):
        return functional_call(norm, dict(zip(names, params)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


def test_bf16_in_bf16_out_computed_in_fp32():
    torch.manual_seed(2)
    norm = randomise(DyT(DIM))
    x = (3.0 * torch.randn(4, DIM)).to(torch.bfloat16)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    ref = dyt_formula(x.double(), norm.alpha.double(), norm.weight.double(), norm.bias.double())
    # One bf16 rounding at the end only: within half a bf16 ulp (2^-8 relative) of the exact value.
    torch.testing.assert_close(out.double(), ref, rtol=2**-8, atol=1e-6)
