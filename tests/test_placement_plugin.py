"""The placement plugin of docs/components.md, run exactly as the doc shows it (read out of the doc, so
the two cannot drift): it registers under its own name, meets the contract, is LayerScale, and an
experiment listing it under ``imports:`` trains to completion through the CLI."""

from __future__ import annotations

import re
import sys

import pytest
import torch
import yaml

from components import TransformerConfig, TransformerLM, registry
from e2e import REPO, runs, write_experiment
from test_contract import check_bf16, check_gradients, check_reference
from workbench.cli import main

SECTION = "### Worked example: LayerScale as a plugin"
MODULE, NAME = "my_layerscale", "my_layerscale"


def doc_blocks() -> tuple[str, dict]:
    """(the plugin module's code, the experiment's YAML) as the doc's worked example shows them."""
    text = (REPO / "docs" / "components.md").read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    experiment = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    return code, experiment


@pytest.fixture
def plugin(tmp_path, monkeypatch, sandbox_registry):
    """The doc's module written to ``my_layerscale.py`` in a fresh folder; unregistered afterwards."""
    code, _ = doc_blocks()
    (tmp_path / f"{MODULE}.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield tmp_path
    sys.modules.pop(MODULE, None)


def test_the_doc_plugin_registers_and_meets_the_placement_contract(plugin):
    __import__(MODULE)
    entry = registry.get("norm_placement", NAME)
    assert entry.traits["final_norm"] is True and entry.traits["reference"] is not None
    for check in (check_reference, check_gradients, check_bf16):
        check("norm_placement", NAME)


def test_the_doc_plugin_is_layerscale(plugin):
    # Same init (CaiT's depth rule included) and same outputs as the built-in, name for name.
    __import__(MODULE)
    tokens = torch.randint(0, 64, (2, 9))
    for n_layers, option in ((2, {}), (20, {}), (2, {"init_value": 0.01})):
        base = dict(vocab_size=64, dim=32, n_layers=n_layers, n_heads=4, max_seq_len=16)
        ours = TransformerLM(TransformerConfig(**base, norm_placement={"name": NAME, **option}), init_seed=0)
        builtin = TransformerLM(TransformerConfig(**base, norm_placement={"name": "layerscale", **option}), init_seed=0)
        a, b = ours.state_dict(), builtin.state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
        assert "blocks.0.attn_scale" in a
        torch.testing.assert_close(ours(tokens), builtin(tokens), rtol=0, atol=0)


def test_a_bad_option_of_the_doc_plugin_is_refused_at_config_time(plugin):
    __import__(MODULE)
    with pytest.raises(ValueError, match=r"init_value=-1.*must be finite float > 0"):
        TransformerConfig(norm_placement={"name": NAME, "init_value": -1})


@pytest.mark.e2e
def test_an_experiment_importing_the_doc_plugin_trains_to_completion(plugin, cache):
    _, doc_experiment = doc_blocks()
    assert doc_experiment["imports"] == [MODULE]
    variants = "".join(f"  {name}: {yaml.safe_dump(v, default_flow_style=True).strip()}\n"
                       for name, v in doc_experiment["variants"].items())
    exp = write_experiment(plugin, cache, name="layerscale_plugin", steps=4, every=2, seeds=[0], imports=doc_experiment["imports"],
                           variants=variants, baseline="pre")
    out = plugin / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    done = runs(out)
    assert set(done) == {(name, 0) for name in doc_experiment["variants"]}
    assert all(r["status"] == "completed" and r["steps"] == 4 for r in done.values())


def test_the_doc_plugin_is_layerscale_under_completep_too(plugin):
    # It takes branch_multiplier and declares its weights, so completep scales its branches as the built-in's.
    __import__(MODULE)
    tokens = torch.randint(0, 64, (2, 9))
    base = dict(vocab_size=64, dim=64, n_layers=4, n_heads=4, max_seq_len=16, parametrization="completep", base_dim=32,
                base_layers=2)
    ours = TransformerLM(TransformerConfig(**base, norm_placement={"name": NAME, "init_value": 0.5}), init_seed=0)
    builtin = TransformerLM(TransformerConfig(**base, norm_placement={"name": "layerscale", "init_value": 0.5}), init_seed=0)
    assert ours.blocks[0].place.branch_multiplier == 0.5
    torch.testing.assert_close(ours(tokens), builtin(tokens), rtol=0, atol=0)
