"""Feed-forward layers against float64 formulas, and the parameter-matched widths of GLUs."""

from __future__ import annotations

import math

import pytest
import torch

from components import MLP, SwiGLU, TransformerConfig, glu_hidden_dim, registry

# Independent activation formulas, by registered FFN name.
ACTIVATION = {
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "relu2": lambda x: torch.where(x > 0, x, torch.zeros_like(x)) ** 2,
    "swiglu": lambda x: x / (1 + torch.exp(-x)),  # SiLU gate
    "geglu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "reglu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
}
GLUS = {"swiglu", "geglu", "reglu"}


def linear(x, layer):
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


@pytest.mark.parametrize("name", registry.available("ffn"))
def test_ffn_matches_formula(name):
    torch.manual_seed(0)
    ffn = registry.build("ffn", name, dim=16, hidden_dim=40, bias=True).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    act = ACTIVATION[name]  # a newly registered FFN needs its formula here
    if name in GLUS:
        ref = linear(act(linear(x, ffn.gate)) * linear(x, ffn.up), ffn.down)
    else:
        ref = linear(act(linear(x, ffn.up)), ffn.down)
    assert ffn.is_glu == (name in GLUS)
    torch.testing.assert_close(ffn(x), ref)


def test_bias_flag_and_defaults():
    # MLPs default to biases (GPT-2), GLUs to none (LLaMA); bias=False removes every one.
    assert all(m.bias is not None for m in (MLP(8, 32).up, MLP(8, 32).down))
    assert all(getattr(SwiGLU(8, 16), n).bias is None for n in ("gate", "up", "down"))
    for name in registry.available("ffn"):
        ffn = registry.build("ffn", name, dim=8, hidden_dim=16, bias=False)
        assert not any(n.endswith("bias") for n, _ in ffn.named_parameters()), name


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*available: relu, gelu"):
        MLP(8, 32, activation="swish")


def ffn_params(cfg: TransformerConfig) -> int:
    ffn = registry.build("ffn", cfg.ffn, dim=cfg.dim, hidden_dim=cfg.hidden_dim, bias=False)
    return sum(p.numel() for p in ffn.parameters())


@pytest.mark.parametrize("dim", [64, 96, 128, 256, 512, 1000])
@pytest.mark.parametrize("glu", sorted(GLUS))
def test_glu_default_width_is_parameter_matched_to_4x_mlp(dim, glu):
    mlp = TransformerConfig(dim=dim, n_heads=4, ffn="gelu")
    assert mlp.hidden_dim == 4 * dim
    ratio = ffn_params(TransformerConfig(dim=dim, n_heads=4, ffn=glu)) / ffn_params(mlp)
    assert abs(ratio - 1) < 0.01, ratio


@pytest.mark.parametrize(
    "dim, multiple_of, multiplier, expected",
    [
        (4096, 256, None, 11008),  # LLaMA 7B
        (5120, 256, None, 13824),  # LLaMA 13B
        (8192, 4096, 1.3, 28672),  # LLaMA 2 70B
        (4096, 1024, 1.3, 14336),  # LLaMA 3 8B
    ],
)
def test_glu_hidden_dim_follows_llama(dim, multiple_of, multiplier, expected):
    assert glu_hidden_dim(dim, multiple_of=multiple_of, ffn_dim_multiplier=multiplier) == expected
    cfg = TransformerConfig(dim=dim, n_heads=32, multiple_of=multiple_of, ffn_dim_multiplier=multiplier)
    assert cfg.hidden_dim == expected


def test_explicit_hidden_dim_wins():
    assert TransformerConfig(ffn="swiglu", ffn_hidden_dim=100).hidden_dim == 100
    assert TransformerConfig(ffn="relu", ffn_hidden_dim=100).hidden_dim == 100
