"""RMSNorm and LayerNorm against float64 formulas; eps, bias and precision handling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from components import LayerNorm, RMSNorm

DIM = 32


def rms_formula(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def layernorm_formula(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)  # biased variance, as in Ba et al.
    y = (x - mean) / torch.sqrt(var + eps) * weight
    return y if bias is None else y + bias


def randomise(module):
    """Non-trivial weights (and bias), so the formulas test how they are applied."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


@pytest.fixture
def x64():
    torch.manual_seed(0)
    return 2.0 * torch.randn(3, 5, DIM, dtype=torch.float64) + 0.5


def test_rmsnorm_matches_formula(x64):
    norm = randomise(RMSNorm(DIM).double())
    torch.testing.assert_close(norm(x64), rms_formula(x64, norm.weight, 1e-6))


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_formula(x64, bias):
    norm = randomise(LayerNorm(DIM, bias=bias).double())
    torch.testing.assert_close(norm(x64), layernorm_formula(x64, norm.weight, norm.bias, 1e-5))


def test_layernorm_without_bias_has_no_bias_parameter():
    assert [name for name, _ in LayerNorm(DIM, bias=False).named_parameters()] == ["weight"]
    assert [name for name, _ in LayerNorm(DIM).named_parameters()] == ["weight", "bias"]


@pytest.mark.parametrize("cls, default", [(RMSNorm, 1e-6), (LayerNorm, 1e-5)])
def test_defaults_unit_weight_and_eps(cls, default):
    norm = cls(DIM)
    assert norm.eps == default
    torch.testing.assert_close(norm.weight.detach(), torch.ones(DIM))


def test_rmsnorm_honours_eps(x64):
    # A large eps visibly shrinks the output: it must enter the formula, not just the attribute.
    x = 0.1 * x64
    norm = RMSNorm(DIM, eps=0.5).double()
    assert norm.eps == 0.5
    torch.testing.assert_close(norm(x), rms_formula(x, 1.0, 0.5))
    assert not torch.allclose(norm(x), RMSNorm(DIM).double()(x))


def test_layernorm_honours_eps(x64):
    x = 0.1 * x64
    norm = LayerNorm(DIM, eps=0.5).double()
    assert norm.eps == 0.5
    torch.testing.assert_close(norm(x), layernorm_formula(x, 1.0, 0.0, 0.5))
    assert not torch.allclose(norm(x), LayerNorm(DIM).double()(x))


@pytest.mark.parametrize("cls", [RMSNorm, LayerNorm])
def test_float64_stays_float64(cls, x64):
    # A bare .float() inside would round to fp32 and the float64 formula tests above would lose 9 digits.
    assert cls(DIM).double()(x64).dtype == torch.float64


def test_rmsnorm_computes_in_fp32_under_bf16():
    torch.manual_seed(0)
    x = (3.0 * torch.randn(4, 16, 512) + 2.0).to(torch.bfloat16)
    out = RMSNorm(512).to(torch.bfloat16)(x)
    h = x.float()
    fp32 = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, fp32, atol=0, rtol=0)
    # The comparison has teeth: normalising in bf16 itself rounds differently.
    bf16 = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert (bf16 != fp32).any()


def test_layernorm_computes_in_fp32_under_bf16():
    torch.manual_seed(0)
    x = (3.0 * torch.randn(4, 16, 512) + 2.0).to(torch.bfloat16)
    norm = randomise(LayerNorm(512)).to(torch.bfloat16)
    out = norm(x)
    fp32 = F.layer_norm(x.float(), (512,), norm.weight.float(), norm.bias.float(), 1e-5).to(torch.bfloat16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, fp32, atol=0, rtol=0)
