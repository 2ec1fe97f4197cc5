"""``workbench components``: every entry's description in full (never cut mid-sentence) and its options
with their defaults, from the same signature the config checker validates options against."""

from __future__ import annotations

import inspect
import warnings

import pytest
from torch import nn

from components import TransformerConfig, registry
from components.context import BuildContext
from components.contract import KINDS
from components.registry import Registry
from workbench.cli import main
from workbench.components_listing import SETTING_KEYS, description, listing_lines

ENTRIES = [(kind, entry.name) for kind in registry.kinds() for entry in registry.entries(kind)]


def entry_block(lines: list[str], name: str) -> str:
    """The entry's name line and the indented lines after it, joined as one text."""
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" " * 15)), len(lines))
    return " ".join(" ".join(lines[start:end]).split())


@pytest.mark.parametrize("kind, name", ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_each_entry_shows_its_whole_description_and_every_option(kind, name, capsys):
    assert main(["components"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kind_line = next(i for i, line in enumerate(lines) if line.startswith(f"{kind} ") or line == f"{kind}:")
    block = entry_block(lines[kind_line + 1:], name)
    assert description(registry.get(kind, name)) in block
    parameters = inspect.signature(registry.get(kind, name).factory).parameters
    options = registry.options(kind, name, KINDS[kind].sizes)  # what validate() accepts
    for option, type_name in options.items():
        default = SETTING_KEYS[option] if option in KINDS[kind].settings else repr(parameters[option].default)
        assert f"{option}: {type_name} = {default}" in block, (option, block)
    assert ("options: none" in block) == (not options)


def test_a_description_cut_by_its_first_line_is_shown_whole():
    text = " ".join(" ".join(listing_lines()).split())
    assert '(Zhu et al., 2025, "Transformers without Normalization").' in text  # dyt's docstring wraps its first line
    assert "lowered by slope_h * d, which holds at any length." in text  # alibi's too
    assert "eps: float = 1e-06 (or model.norm_eps)" in text and "n_experts: int = 8" in text


def test_a_plugin_shows_its_paragraph_a_required_option_and_an_explicit_description():
    plugins = Registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # traits left to their defaults: not what this test is about

        @plugins.register("norm", "scaled")
        class Scaled(nn.Module):
            """A norm whose first line
            goes on here.

            Not this paragraph."""

            def __init__(self, dim: int, scale: float, eps: float = 1e-3):
                super().__init__()

        plugins.register("norm", "said", description="Told, not read.")(Scaled)
    text = " ".join(" ".join(listing_lines(plugins)).split())
    assert "scaled A norm whose first line goes on here. options: scale: float (required); eps: float = 0.001" in text
    assert "said Told, not read." in text and "Not this paragraph" not in text


def test_settings_show_the_model_key_the_model_passes():
    """SETTING_KEYS says which config key fills each kind's setting: checked against BuildContext itself."""
    config = TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=2, n_heads=2, bias=True,
                               rope_theta=1234.5, init_std=0.0125)
    context = BuildContext.from_config(config)
    settings = {s for kind in KINDS.values() for s in kind.settings}
    assert settings == set(SETTING_KEYS)
    for setting, key in SETTING_KEYS.items():
        assert getattr(context, setting) == getattr(config, key.removeprefix("model."))
