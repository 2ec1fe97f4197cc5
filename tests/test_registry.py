"""The component registry: lookup, traits declared at registration, spec validation, errors and
third-party registration (every entry built and checked against its contract: test_contract.py)."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import textwrap
import typing
import warnings
from importlib import metadata
from pathlib import Path

import pytest
import torch
from torch import nn

from components import LayerNorm, RMSNorm, Registry, UnknownComponentError, registry
from components.contract import KINDS, ContractWarning
from components.registry import InvalidOption

ROOT = Path(__file__).resolve().parents[1]

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


def test_unknown_option_is_an_error_naming_it_and_listing_the_options_with_types():
    with pytest.raises(InvalidOption, match=r"^norm 'rmsnorm' has no option 'epsilon' \(options: dim: int, eps: float\)$"):
        registry.build("norm", {"name": "rmsnorm", "epsilon": 1e-5}, dim=8)
    assert issubclass(InvalidOption, TypeError)


def test_module_without_own_init_takes_no_options():
    # NaiveAttention inherits nn.Module's (*args, **kwargs): that must not swallow every option.
    assert isinstance(registry.build("attention", "naive", dim=8, head_dim=4), nn.Module)
    with pytest.raises(InvalidOption, match=r"attention 'naive' has no option 'dropout' \(options: none\)"):
        registry.build("attention", {"name": "naive", "dropout": 0.1})


def test_mapping_without_name_is_an_error():
    with pytest.raises(UnknownComponentError, match="has no 'name'"):
        registry.build("norm", {"eps": 1e-5}, dim=8)


# --- validate: a spec checked before anything is built ----------------------------------------


def test_validate_returns_the_canonical_spec():
    assert registry.validate("norm", "rmsnorm") == "rmsnorm"
    assert registry.validate("norm", {"name": "rmsnorm"}) == "rmsnorm"  # no options: its name
    assert registry.validate("norm", {"name": "rmsnorm", "eps": 1e-5}) == {"name": "rmsnorm", "eps": 1e-5}


def test_validate_names_an_unknown_component_with_a_suggestion():
    with pytest.raises(UnknownComponentError, match=r"unknown norm 'rmsnrom' \(did you mean 'rmsnorm'\?"):
        registry.validate("norm", {"name": "rmsnrom", "eps": 1e-5})
    with pytest.raises(UnknownComponentError, match="has no 'name'.*available: .*rmsnorm"):
        registry.validate("norm", {"eps": 1e-5})


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "rmsnorm", "eps": "small"}, r"norm 'rmsnorm' option eps='small' must be float, not str \(options: eps: float\)"),
        ({"name": "rmsnorm", "eps": True}, r"option eps=True must be float, not bool"),
        ({"name": "layernorm", "bias": 1}, r"option bias=1 must be bool, not int \(options: eps: float, bias: bool\)"),
        ({"name": "rmsnorm", "dim": 8}, r"norm 'rmsnorm': 'dim' is set by the model, not an option \(options: eps: float\)"),
        ({"name": "rmsnorm", "epsilon": 1e-5}, r"norm 'rmsnorm' has no option 'epsilon' \(options: eps: float\)"),
    ],
)
def test_validate_rejects_a_bad_option_in_one_line(spec, message):
    with pytest.raises(InvalidOption, match=message) as info:
        registry.validate("norm", spec, context_names=KINDS["norm"].sizes)
    assert "\n" not in str(info.value)


def test_validate_accepts_an_int_for_a_float_and_none_for_an_optional():
    assert registry.validate("norm", {"name": "rmsnorm", "eps": 1}) == {"name": "rmsnorm", "eps": 1}

    def factory(dim: int, scale: float | None = None, mode: typing.Literal["a", "b"] = "a"):
        return nn.Identity()

    registry_ = Registry()
    registry_._plugins_loaded = True
    registry_.register("norm", "wbtest_opt")(factory)
    assert registry_.validate("norm", {"name": "wbtest_opt", "scale": None, "mode": "b"}) == {"name": "wbtest_opt", "scale": None, "mode": "b"}
    with pytest.raises(InvalidOption, match=r"option mode='c' must be 'a' \| 'b'"):
        registry_.validate("norm", {"name": "wbtest_opt", "mode": "c"})
    assert registry_.options("norm", "wbtest_opt", ("dim",)) == {"scale": "float | None", "mode": "'a' | 'b'"}


def test_an_option_of_the_wrong_type_fails_at_build_too():
    with pytest.raises(InvalidOption, match="must be float"):
        registry.build("norm", {"name": "rmsnorm", "eps": "1e-5"}, dim=8)


# --- traits: what the model relies on, declared at registration --------------------------------


def test_traits_are_read_only_with_the_kinds_defaults_filled(sandbox_registry):
    @registry.register("norm_placement", "wbtest_declared", final_norm=False)
    class Declared(nn.Module):
        """Declared."""

        def forward(self, x, attn, ffn):
            return x

    traits = registry.get("norm_placement", "wbtest_declared").traits
    assert dict(traits) == {"final_norm": False, "residual_init": None, "weights": None, "reference": None}
    with pytest.raises(TypeError):
        traits["final_norm"] = True


def test_a_declared_mapping_cannot_change_after_registration(sandbox_registry):
    roles = {"weight": "input"}

    @registry.register("norm", "wbtest_roles", weights=roles)
    class Roles(nn.Module):
        """Roles."""

    roles["weight"] = "hidden"  # the plugin's own dict, changed later: the entry keeps what was declared
    weights = registry.get("norm", "wbtest_roles").traits["weights"]
    assert dict(weights) == {"weight": "input"}
    with pytest.raises(TypeError):
        weights["bias"] = "input"


def test_importing_the_builtins_raises_no_contract_warning():
    # Built-ins declare every trait explicitly; a fresh interpreter records what registration warns.
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import components\n"
        "print([str(w.message) for w in caught if w.category.__name__ == 'ContractWarning'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "kind, traits, message",
    [
        ("ffn", dict(widht="glu"), r"ffn 'wbtest_x': unknown trait 'widht' \(traits of ffn: width, residual, weights, reference\)"),
        ("ffn", dict(width="wide"), r"ffn 'wbtest_x': trait width='wide' must be 'mlp' or 'glu'"),
        ("ffn", dict(residual="down"), r"trait residual='down' must be a tuple of fnmatch patterns"),
        ("norm_placement", dict(final_norm=1), r"trait final_norm=1 must be True or False"),
        ("norm_placement", dict(residual_init=0.5), r"trait residual_init=0.5 must be a callable n_layers -> gain, or None"),
        ("attention", dict(window="yes"), r"attention 'wbtest_x': trait window='yes' must be True or False"),
        ("positions", dict(max_len="seq_len"), r"trait max_len='seq_len' must be None, 'max_seq_len' or a positive int"),
        ("norm", dict(reference=3), r"trait reference=3 must be a callable"),
        ("norm", dict(final_norm=True), r"norm 'wbtest_x': unknown trait 'final_norm' \(traits of norm: weights, reference\)"),
    ],
)
def test_an_unknown_or_ill_typed_trait_is_a_type_error_naming_it(kind, traits, message, sandbox_registry):
    with pytest.raises(TypeError, match=message):
        registry.register(kind, "wbtest_x", **traits)
    assert "wbtest_x" not in registry._entries.get(kind, {})


@pytest.mark.parametrize(
    "kind, traits, warned",
    [
        ("ffn", dict(), ["width", "residual"]),
        ("ffn", dict(width="mlp"), ["residual"]),
        ("ffn", dict(width="glu", residual=()), []),
        ("norm_placement", dict(residual_init=None), ["final_norm"]),
        ("norm_placement", dict(final_norm=True), []),
        ("norm", dict(), []),
    ],
)
def test_an_omitted_trait_warns_only_where_its_default_changes_what_is_compared(kind, traits, warned, sandbox_registry):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.register(kind, "wbtest_partial", **traits)(nn.Identity)
    messages = [str(w.message) for w in caught if issubclass(w.category, ContractWarning)]
    phrase = {"width": "declares no width", "residual": "declares no residual projections", "final_norm": "does not declare final_norm"}
    assert len(messages) == len(warned)
    assert messages == [f"{kind} 'wbtest_partial' {phrase[t]}" + m.split(phrase[t], 1)[1] for t, m in zip(warned, messages)]


def test_a_placement_must_be_a_module_class(sandbox_registry):
    # The old form, a function place(x, attn, ffn, norms), is refused at registration with the contract.
    with pytest.raises(TypeError, match=r"norm_placement 'wbtest_fn' must be a subclass of torch.nn.Module \(module\(dim, n_layers, layer_idx, make_norm"):
        @registry.register("norm_placement", "wbtest_fn", final_norm=True)
        def place(x, attn, ffn, norms):
            """Old style."""
            return x
    assert "wbtest_fn" not in registry.available("norm_placement")


def test_build_passes_each_factory_the_context_fields_its_kind_declares_and_it_names():
    from components import BuildContext, TransformerConfig

    context = BuildContext.from_config(TransformerConfig(dim=32, n_heads=4, n_layers=6, bias=True), layer_idx=5)
    assert registry.build("norm", "layernorm", context).bias is not None  # dim and bias from the context
    assert registry.build("norm", "rmsnorm", context, dim=8).weight.shape == (8,)  # a size given by hand wins
    ffn = registry.build("ffn", "swiglu", context)
    assert (ffn.up.in_features, ffn.up.out_features) == (32, context.hidden_dim)
    place = registry.build("norm_placement", "layerscale", context)
    assert place.attn_scale.shape == (32,) and isinstance(place.attn_norm, RMSNorm)
    with pytest.raises(InvalidOption, match="'n_layers' is set by the model, not an option"):
        registry.build("norm_placement", {"name": "deepnorm", "n_layers": 2}, context)


# --- third-party registration ------------------------------------------------------------------

PLUGIN = '''
"""A third-party norm, registered by importing this module."""
import torch
from torch import nn
from components import registry


@registry.register("norm", "{name}")
class TestPluginNorm(nn.Module):
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
    _write_plugin(tmp_path, "wbtest_plugin_norm", "test_plugin_norm_xq")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "test_plugin_norm_xq" not in registry.available("norm")
    registry.import_modules(["wbtest_plugin_norm"])
    assert "test_plugin_norm_xq" in registry.available("norm")
    norm = registry.build("norm", "test_plugin_norm_xq", dim=16, bias=True)  # bias: context it does not take
    x = torch.randn(3, 16)
    torch.testing.assert_close(norm(x).norm(dim=-1), torch.full((3,), 4.0))


def test_registration_through_an_entry_point(tmp_path, monkeypatch, sandbox_registry):
    _write_plugin(tmp_path, "wbtest_ep_plugin", "test_plugin_norm_xq_ep")
    monkeypatch.syspath_prepend(str(tmp_path))
    groups = []

    def entry_points(group):
        groups.append(group)
        return [metadata.EntryPoint(name="test_plugin", value="wbtest_ep_plugin", group=group)]

    monkeypatch.setattr(registry_module.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    assert "test_plugin_norm_xq_ep" in registry.available("norm")  # discovered on first lookup
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
