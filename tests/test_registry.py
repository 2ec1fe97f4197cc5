"""The component registry: lookup, errors, third-party registration, and every entry built and run."""

from __future__ import annotations

import importlib
import logging
import textwrap
import warnings
from importlib import metadata

import pytest
import torch
from torch import nn

from components import LayerNorm, RMSNorm, UnknownComponentError, registry
from components.attention import NaiveAttention
from conftest import entry_params

# `components.registry` the attribute is the Registry object; the module is reached this way.
registry_module = importlib.import_module("components.registry")

# The names DESIGN.md promises for each kind.
REQUIRED = {
    "norm": ["layernorm", "rmsnorm"],
    "norm_placement": ["pre", "post"],
    "ffn": ["relu", "gelu", "swiglu"],
    "positions": ["learned", "sinusoidal", "rope", "none"],
    "attention": ["naive", "sdpa", "flash"],
}


# --- lookup ------------------------------------------------------------------------------------


def test_build_by_name():
    norm = registry.build("norm", "rmsnorm", dim=8)
    assert isinstance(norm, RMSNorm) and norm.weight.shape == (8,)


def test_build_by_mapping_passes_options():
    norm = registry.build("norm", {"name": "layernorm", "eps": 1e-3, "bias": False}, dim=8)
    assert isinstance(norm, LayerNorm) and norm.eps == 1e-3 and norm.bias is None


def test_mapping_options_override_context():
    norm = registry.build("norm", {"name": "layernorm", "bias": False}, dim=8, bias=True)
    assert norm.bias is None


def test_context_reaches_only_factories_that_declare_it():
    # One call site serves the family: RMSNorm takes no bias, LayerNorm does.
    ctx = dict(dim=8, bias=True, max_seq_len=16)
    assert isinstance(registry.build("norm", "rmsnorm", **ctx), RMSNorm)
    assert registry.build("norm", "layernorm", **ctx).bias is not None


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_available_is_sorted_and_has_the_required_names(kind):
    names = registry.available(kind)
    assert names == sorted(names)
    assert set(REQUIRED[kind]) <= set(names)


def test_kinds_lists_every_kind():
    assert set(REQUIRED) <= set(registry.kinds())


def test_every_entry_has_a_one_line_description():
    for kind in registry.kinds():
        for entry in registry.entries(kind):
            assert entry.description and "\n" not in entry.description, (kind, entry.name)


def test_contains():
    assert ("norm", "rmsnorm") in registry
    assert ("norm", "nope") not in registry


# --- errors ------------------------------------------------------------------------------------


def test_unknown_name_message_has_kind_suggestion_and_options():
    with pytest.raises(UnknownComponentError) as info:
        registry.build("norm", "rmsnrom", dim=8)
    available = ", ".join(registry.available("norm"))
    assert str(info.value) == f"unknown norm 'rmsnrom' (did you mean 'rmsnorm'? available: {available})"


def test_unknown_name_without_close_match_lists_options_only():
    with pytest.raises(UnknownComponentError) as info:
        registry.get("attention", "zzzzzz")
    message = str(info.value)
    assert "did you mean" not in message
    assert all(name in message for name in registry.available("attention"))


def test_unknown_kind_names_the_kind():
    with pytest.raises(UnknownComponentError, match=r"unknown component kind 'nrom' \(did you mean 'norm'\?"):
        registry.available("nrom")


def test_unknown_option_is_an_error_naming_it():
    with pytest.raises(TypeError, match=r"rmsnorm' has no option 'epsilon' \(options: dim, eps\)"):
        registry.build("norm", {"name": "rmsnorm", "epsilon": 1e-5}, dim=8)


def test_module_without_own_init_takes_no_options():
    # SDPAttention inherits nn.Module's (*args, **kwargs): that must not swallow every option.
    assert isinstance(registry.build("attention", "sdpa", dim=8, head_dim=4), nn.Module)
    with pytest.raises(TypeError, match=r"attention 'sdpa' has no option 'dropout' \(options: none\)"):
        registry.build("attention", {"name": "sdpa", "dropout": 0.1})


def test_mapping_without_name_is_an_error():
    with pytest.raises(UnknownComponentError, match="has no 'name'"):
        registry.build("norm", {"eps": 1e-5}, dim=8)


# --- third-party registration ------------------------------------------------------------------

PLUGIN = '''
"""A third-party norm, registered by importing this module."""
import torch
from torch import nn
from components import registry


@registry.register("norm", "{name}")
class ScaleNorm(nn.Module):
    """ScaleNorm: g * x / ||x|| (Nguyen & Salazar, 2019)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.g = nn.Parameter(torch.tensor(dim ** 0.5))
        self.eps = eps

    def forward(self, x):
        return self.g * x / x.norm(dim=-1, keepdim=True).clamp_min(self.eps)
'''


def _write_plugin(tmp_path, module: str, name: str) -> None:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(PLUGIN.format(name=name)))


def test_registration_by_importing_a_module(tmp_path, monkeypatch, sandbox_registry):
    _write_plugin(tmp_path, "wbtest_scalenorm", "scalenorm")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "scalenorm" not in registry.available("norm")
    registry.import_modules(["wbtest_scalenorm"])
    assert "scalenorm" in registry.available("norm")
    norm = registry.build("norm", "scalenorm", dim=16, bias=True)  # bias: context it does not take
    x = torch.randn(3, 16)
    torch.testing.assert_close(norm(x).norm(dim=-1), torch.full((3,), 4.0))


def test_registration_through_an_entry_point(tmp_path, monkeypatch, sandbox_registry):
    _write_plugin(tmp_path, "wbtest_ep_plugin", "scalenorm_ep")
    monkeypatch.syspath_prepend(str(tmp_path))
    groups = []

    def entry_points(group):
        groups.append(group)
        return [metadata.EntryPoint(name="scalenorm", value="wbtest_ep_plugin", group=group)]

    monkeypatch.setattr(registry_module.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    assert "scalenorm_ep" in registry.available("norm")  # discovered on first lookup
    assert groups == ["workbench.components"]
    registry.available("norm")
    assert len(groups) == 1  # scanned once


def test_broken_entry_point_warns_instead_of_crashing(monkeypatch, sandbox_registry, caplog):
    def entry_points(group):
        return [metadata.EntryPoint(name="broken", value="wbtest_does_not_exist", group=group)]

    monkeypatch.setattr(registry_module.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with caplog.at_level(logging.WARNING, logger="components.registry"):
        assert "rmsnorm" in registry.available("norm")
    assert "wbtest_does_not_exist" in caplog.text


def test_reregistering_a_name_warns(sandbox_registry):
    @registry.register("norm", "wbtest_dup")
    class First(nn.Identity):
        """First."""

    with pytest.warns(UserWarning, match="norm 'wbtest_dup' re-registered"):

        @registry.register("norm", "wbtest_dup")
        class Second(nn.Identity):
            """Second."""

    assert registry.get("norm", "wbtest_dup").factory is Second


def test_registering_the_same_factory_again_is_silent(sandbox_registry):
    # A module imported twice (e.g. listed under `imports:` and as an entry point) must not warn.
    class Same(nn.Identity):
        """Same."""

    registry.register("norm", "wbtest_same")(Same)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.register("norm", "wbtest_same")(Same)


# --- every entry, built and run ----------------------------------------------------------------
# A new entry is tested for free; a new *kind* must add its runner here.

DIM, HEADS, HEAD_DIM, T = 16, 4, 8, 6
CONTEXT = dict(dim=DIM, hidden_dim=48, head_dim=HEAD_DIM, max_seq_len=32, theta=10000.0, bias=True)


def run_norm(name):
    norm = registry.build("norm", name, **CONTEXT)
    y = norm(3.0 * torch.randn(2, T, DIM) + 1.0)
    # Unit gain: every normaliser returns features of unit root-mean-square.
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(2, T), atol=1e-3, rtol=1e-3)


def run_ffn(name):
    ffn = registry.build("ffn", name, **CONTEXT)
    x = torch.randn(2, T, DIM)
    y = ffn(x)
    assert y.shape == x.shape
    y.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ffn.parameters())


def run_positions(name):
    pos = registry.build("positions", name, **CONTEXT)
    x, x2 = torch.randn(2, T, DIM), torch.randn(2, T, DIM)
    # Absolute schemes add a content-independent term (or nothing).
    torch.testing.assert_close(pos.embed(x) - x, pos.embed(x2) - x2)
    q, k = torch.randn(2, HEADS, T, HEAD_DIM), torch.randn(2, HEADS, T, HEAD_DIM)
    q_rot, k_rot = pos.rotate(q, k)
    # Relative schemes rotate: vector norms are preserved.
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(k_rot.norm(dim=-1), k.norm(dim=-1))


def run_attention(name):
    device, dtype, tol = ("cuda", torch.bfloat16, dict(atol=2e-2, rtol=2e-2)) if name == "flash" else ("cpu", torch.float32, {})
    kernel = registry.build("attention", name, **CONTEXT)
    q = torch.randn(2, HEADS, T, HEAD_DIM, device=device, dtype=dtype)
    k, v = torch.randn(2, 2, T, HEAD_DIM, device=device, dtype=dtype), torch.randn(2, 2, T, HEAD_DIM, device=device, dtype=dtype)
    torch.testing.assert_close(kernel(q, k, v), NaiveAttention()(q, k, v), **tol)


def run_placement(name):
    place = registry.get("norm_placement", name).factory
    x = torch.randn(2, T, DIM)
    y = place(x, nn.Linear(DIM, DIM), RMSNorm(DIM))
    assert y.shape == x.shape and torch.isfinite(y).all()


RUNNERS = {"norm": run_norm, "ffn": run_ffn, "positions": run_positions, "attention": run_attention, "norm_placement": run_placement}


def test_every_kind_has_a_runner():
    assert set(registry.kinds()) <= set(RUNNERS)


EVERY_ENTRY = [
    pytest.param(kind, *p.values, marks=p.marks, id=f"{kind}-{p.id}") for kind in sorted(RUNNERS) for p in entry_params(kind)
]


@pytest.mark.parametrize("kind, name", EVERY_ENTRY)
def test_every_entry_builds_and_runs(kind, name):
    torch.manual_seed(0)
    RUNNERS[kind](name)
