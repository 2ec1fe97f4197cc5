"""Feed-forward layers against float64 formulas, and the parameter-matched widths of GLUs."""

from __future__ import annotations

import math

import pytest
import torch

from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

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


@pytest.mark.parametrize("hidden", [40, 42])  # 42: computed at gemm_width, 48
@pytest.mark.parametrize("name", sorted(ACTIVATION))
def test_ffn_matches_formula(name, hidden):
    # Every entry, plugins included, is also checked against its own declared reference (test_contract.py).
    torch.manual_seed(0)
    ffn = registry.build("ffn", name, dim=16, hidden_dim=hidden, bias=True).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    act = ACTIVATION[name]
    if name in GLUS:
        ref = linear(act(linear(x, ffn.gate)) * linear(x, ffn.up), ffn.down)
    else:
        ref = linear(act(linear(x, ffn.up)), ffn.down)
    torch.testing.assert_close(ffn(x), ref)


class GemmWidths(TorchDispatchMode):
    """Records the output shape of every matrix multiply that runs under it."""

    def __init__(self):
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm):
            self.shapes.add(tuple(out.shape))
        return out


def forward_backward(ffn: nn.Module, x: torch.Tensor, precision: str) -> tuple[torch.Tensor, ...]:
    """The output, the input's gradient and every parameter's, of one forward and backward."""
    leaf = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        # Not a leaf, as in a model: autocast caches its casts of leaves, and autograd would then sum
        # the projections' input gradients in bf16 rather than each cast back first.
        y = ffn(leaf + 0)
    (y.float() ** 2).sum().backward()
    grads = (leaf.grad, *(p.grad for p in ffn.parameters()))
    ffn.zero_grad(set_to_none=True)
    return (y, *grads)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", sorted(ACTIVATION))
def test_an_unaligned_hidden_width_runs_padded_and_gives_the_same_bits(name, precision):
    """A hidden width off the GEMM multiple is computed padded (48 wide here), bit for bit what the
    declared calls of the three projections give, forward and backward. (32 tokens, as any multiple
    of 16: with an odd count some activations' last few elements take a scalar kernel on one side
    and may differ in their last bit.)"""
    torch.manual_seed(0)
    ffn = registry.build("ffn", name, dim=24, hidden_dim=42, bias=True)
    x = torch.randn(4, 8, 24)
    with GemmWidths() as padded_gemms:
        padded = forward_backward(ffn, x, precision)
    handle = ffn.down.register_forward_pre_hook(lambda module, args: None)  # a hook: the declared calls
    with GemmWidths() as declared_gemms:
        declared = forward_backward(ffn, x, precision)
    handle.remove()
    hidden = {(32, 42), (32, 48)}  # (tokens, width): up/gate forward, down's input gradient
    assert padded_gemms.shapes & hidden == {(32, 48)}
    assert declared_gemms.shapes & hidden == {(32, 42)}
    for a, b in zip(padded, declared, strict=True):
        assert torch.equal(a, b)


def test_hooks_and_replaced_projections_see_the_declared_calls():
    """What a user attaches to a projection (a hook, an adapter in its place) sees it called at the
    declared width, padding or not."""

    class Adapter(nn.Linear):
        calls = 0

        def forward(self, x):
            Adapter.calls += 1
            return super().forward(x)

    ffn = SwiGLU(32, 42)
    seen = []
    ffn.down.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    ffn(torch.randn(2, 32))
    assert seen == [42]
    ffn = SwiGLU(32, 42)
    ffn.up = Adapter(32, 42, bias=False)
    ffn(torch.randn(2, 32))
    assert Adapter.calls == 1


@pytest.mark.parametrize("name", sorted(ACTIVATION))
def test_builtins_declare_width_and_residual_projection(name):
    traits = registry.get("ffn", name).traits
    assert traits["width"] == ("glu" if name in GLUS else "mlp")
    assert traits["residual"] == ("down",)
    assert TransformerConfig(ffn=name).is_glu == (name in GLUS)


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
    ffn = registry.build("ffn", cfg.ffn, dim=cfg.dim, hidden_dim=cfg.ffn_hidden_dim, bias=False)
    return sum(p.numel() for p in ffn.parameters())


@pytest.mark.parametrize("dim", [64, 96, 128, 256, 512, 1000])
@pytest.mark.parametrize("glu", sorted(GLUS))
def test_glu_default_width_is_parameter_matched_to_4x_mlp(dim, glu):
    mlp = TransformerConfig(dim=dim, n_heads=4, ffn="gelu")
    assert mlp.ffn_hidden_dim == 4 * dim
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
    assert cfg.ffn_hidden_dim == expected


def test_explicit_hidden_dim_wins():
    assert TransformerConfig(ffn="swiglu", ffn_hidden_dim=100).ffn_hidden_dim == 100
    assert TransformerConfig(ffn="relu", ffn_hidden_dim=100).ffn_hidden_dim == 100


def test_a_glu_plugin_that_declares_its_width_is_parameter_matched(sandbox_registry):
    @registry.register("ffn", "wbtest_bilinear", width="glu", residual=("out",))
    class Bilinear(torch.nn.Module):
        """Bilinear GLU without activation, other layer names than the built-ins."""

        def __init__(self, dim: int, hidden_dim: int, bias: bool = False):
            super().__init__()
            self.a = torch.nn.Linear(dim, hidden_dim, bias=bias)
            self.b = torch.nn.Linear(dim, hidden_dim, bias=bias)
            self.out = torch.nn.Linear(hidden_dim, dim, bias=bias)

        def forward(self, x):
            return self.out(self.a(x) * self.b(x))

    for dim in (64, 256):
        mlp = TransformerConfig(dim=dim, n_heads=4, ffn="gelu")
        cfg = TransformerConfig(dim=dim, n_heads=4, ffn="wbtest_bilinear")
        assert cfg.is_glu and cfg.ffn_hidden_dim == glu_hidden_dim(dim, multiple_of=1)
        assert abs(ffn_params(cfg) / ffn_params(mlp) - 1) < 0.01


def test_a_plugin_without_a_width_gets_the_mlp_width_and_a_warning(sandbox_registry):
    from components.contract import ContractWarning

    with pytest.warns(ContractWarning, match="ffn 'wbtest_undeclared' declares no width and gets the MLP width 4\\*dim"):
        registry.register("ffn", "wbtest_undeclared", residual=())(MLP)
    cfg = TransformerConfig(dim=64, n_heads=4, ffn="wbtest_undeclared")
    assert not cfg.is_glu and cfg.ffn_hidden_dim == 4 * 64
