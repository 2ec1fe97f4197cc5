"""Loading is three steps after composition: pure checks, resolution, machine checks (workbench.config).

``show`` and ``data`` run the first two, so an experiment written for a GPU reads on a laptop; ``run``
runs all three and refuses what this machine cannot train. Nothing here trains.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.config import (ComponentSpec, ConfigError, TrainSettings, Variant, check_experiment, check_machine,
                              compose_experiment, load_experiment, machine_needs, resolve_experiment)
from workbench.config.specs import flat_config, flatten

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ", ".join(str(ROOT / p) for p in ("configs/model/llama.yaml", "configs/size/tiny.yaml", "configs/data/stdlib.yaml"))


def experiment(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(f"name: steps\ndefaults: [{PRESETS}]\n" + textwrap.dedent(body))
    return path


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as a laptop: no CUDA GPU (flash-attn then cannot run either)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def gpu_experiment(tmp_path):
    return experiment(tmp_path, """\
        train: {accelerator: cuda, precision: bf16-mixed, steps: 10}
        variants:
          sdpa: {}
          flash: {model: {attention: flash}}
        """)


def test_show_describes_a_cuda_and_flash_experiment_on_a_machine_without_cuda(gpu_experiment, no_cuda, capsys):
    assert main(["show", str(gpu_experiment)]) == 0
    out = capsys.readouterr().out
    assert "== sdpa == (baseline)" in out and "accelerator=cuda" in out and "model.attention: flash   (sdpa: sdpa)" in out
    needs = [line for line in out.splitlines() if line.startswith("needs: ")]
    assert len(needs) == 1, out
    assert "a CUDA GPU (train.accelerator: cuda)" in needs[0] and "flash-attn (model.attention: flash)" in needs[0]
    assert "not on this machine: a CUDA GPU" in needs[0] and "`run` refuses it here" in needs[0]
    # a kernel holds no parameters: the flash variant is counted as the sdpa one, on any machine
    headers = [line for line in out.splitlines() if line.startswith("== ")]
    assert headers[0].split("params")[1] == headers[1].split("params")[1].split("  (vs")[0]


def test_run_refuses_it_with_one_line_and_exit_2(gpu_experiment, no_cuda, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(gpu_experiment), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.accelerator: 'cuda' but no CUDA GPU is visible" in err, err
    assert not out.exists()
    assert main(["run", str(gpu_experiment), "train.accelerator=auto", "--out", str(out)]) == 2  # then flash says why
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "variants.flash.model.attention: flash attention needs a CUDA GPU" in err, err
    assert not out.exists()


def test_show_of_a_cpu_experiment_has_no_needs_line(tmp_path, capsys):
    assert main(["show", str(experiment(tmp_path, "train: {accelerator: cpu, precision: '32'}\n"))]) == 0
    assert "needs:" not in capsys.readouterr().out


def test_the_machine_step_alone_refuses(gpu_experiment, no_cuda):
    exp = load_experiment(gpu_experiment, machine=False)  # what show and data load
    assert [(n.what, n.why, n.present) for n in machine_needs(exp)][0] == ("a CUDA GPU", "train.accelerator: cuda", False)
    with pytest.raises(ConfigError, match="train.accelerator: 'cuda' but no CUDA GPU"):
        check_machine(exp)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        load_experiment(gpu_experiment)


def test_a_contradiction_is_refused_on_any_machine(tmp_path):
    # flash on a CPU run is wrong whatever the machine: the pure checks say so, show included
    path = experiment(tmp_path, "train: {accelerator: cpu}\nvariants: {flash: {model: {attention: flash}}}\n")
    with pytest.raises(ConfigError, match="variants.flash.model.attention: flash attention runs on CUDA only"):
        load_experiment(path, machine=False)


def test_checks_are_pure_and_resolution_returns_a_new_experiment(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("some text\n")
    path = experiment(tmp_path, """\
        data: {source: files, paths: [corpus/*.txt]}
        budget: {tokens: 1000000}
        eval: {lengths: [1, 2]}
        """)
    composed = compose_experiment(path)
    before = {n: v.to_dict() for n, v in composed.variants.items()}
    check_experiment(composed)
    assert {n: v.to_dict() for n, v in composed.variants.items()} == before  # nothing changed
    resolved = resolve_experiment(composed)
    assert {n: v.to_dict() for n, v in composed.variants.items()} == before  # nor here: a new experiment
    base, was = resolved.variants["base"], composed.variants["base"]
    assert was.data["paths"] == ["corpus/*.txt"] and base.data["paths"] == [str(tmp_path / "corpus" / "*.txt")]
    assert base.train.steps == round(1_000_000 / base.train.tokens_per_step) != was.train.steps
    assert base.eval_lengths == [128, 256] and was.eval_lengths == []
    # a missing file is resolution's to find, not the pure checks'
    (tmp_path / "corpus" / "a.txt").unlink()
    check_experiment(composed)
    with pytest.raises(ConfigError, match="data.paths: 'corpus/\\*.txt' matches no file"):
        resolve_experiment(composed)


def test_train_settings_are_typed_and_store_as_the_dict_did(tmp_path):
    variant = next(iter(load_experiment(experiment(tmp_path, "train: {lr: 1.0e-3, devices: 1}\n")).variants.values()))
    assert isinstance(variant.train, TrainSettings) and variant.train.lr == 1e-3 and variant.train.devices == 1
    stored = variant.to_dict()["train"]
    assert type(stored) is dict and list(stored) == list(TrainSettings().as_dict()) and stored["lr"] == 1e-3
    assert TrainSettings.of({"steps": 5}).steps == 5 and TrainSettings.of({"steps": 5}).lr == TrainSettings().lr
    with pytest.raises(TypeError):
        TrainSettings.of({"stpes": 5})


def test_a_stored_config_parses_without_its_plugins():
    # component names are checked against the registry when a model is built, not when a config is read
    spec = ComponentSpec.parse({"name": "my_plugin_norm", "alpha": 2})
    assert (spec.name, spec.options, spec.canonical()) == ("my_plugin_norm", {"alpha": 2}, {"name": "my_plugin_norm", "alpha": 2})
    assert ComponentSpec.parse({"name": "my_plugin_norm"}).canonical() == "my_plugin_norm"
    assert spec.format() == "{name: my_plugin_norm, alpha: 2}"
    stored = {"model": {"norm": {"name": "my_plugin_norm", "alpha": 2}, "ffn": "plugin_ffn"}, "data": {"paths": []},
               "train": {"steps": 3}}
    variant = Variant("v", stored["model"], stored["data"], stored["train"])
    assert variant.to_dict()["model"] == stored["model"] and variant.train.steps == 3
    assert flat_config(stored) == {"model.norm": "{name: my_plugin_norm, alpha: 2}", "model.ffn": "plugin_ffn",
                                   "data.paths": [], "train.steps": 3}


def test_spec_merge_rule():
    rms = ComponentSpec.parse({"name": "rmsnorm", "eps": 1e-5})
    assert rms.merged("layernorm") == ComponentSpec("layernorm")  # a name replaces: options do not leak
    assert rms.merged({"eps": 1e-3}) == ComponentSpec("rmsnorm", {"eps": 1e-3})  # options merge
    assert rms.merged({"name": "rmsnorm"}).canonical() == "rmsnorm" == rms.without("eps").canonical()
    assert flatten({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}
