"""controls: [aa] in the config: the baseline's A/A twin per cell (each size, each grid point), named by
run_groups, its config the baseline's with the next seed stream; bad values exit 2 naming the key; the resolved
experiment.yaml reloads to the same experiment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workbench.cli import main
from workbench.config import ConfigError, load_experiment

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [ROOT / "configs/model/llama.yaml", ROOT / "configs/size/tiny.yaml",
           ROOT / "configs/data/stdlib.yaml", ROOT / "configs/train/cpu.yaml"]


def experiment_file(tmp_path: Path, **fields) -> Path:
    """A valid two-variant experiment (baseline a) with ``fields`` replacing its keys."""
    data = {"name": "exp", "defaults": [str(p) for p in PRESETS], "seeds": [0, 1], "baseline": "a",
            "variants": {"b": {"model": {"norm": "layernorm"}}, "a": {}}, "controls": ["aa"]}
    data.update(fields)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def reload(tmp_path: Path, exp):
    """The experiment as the runner's experiment.yaml stores it, loaded again."""
    path = tmp_path / "run" / "experiment.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    return load_experiment(path)


def same(a, b) -> None:
    assert list(a.variants) == list(b.variants)
    for name, v in a.variants.items():
        w = b.variants[name]
        assert (v.to_dict(), v.arch, v.size, v.point, v.control) == (w.to_dict(), w.arch, w.size, w.point, w.control)
    assert (a.controls, a.archs, a.baseline, a.sizes) == (b.controls, b.archs, b.baseline, b.sizes)


def test_the_twin_is_the_baseline_with_the_next_seed_stream(tmp_path):
    exp = load_experiment(experiment_file(tmp_path))
    assert list(exp.variants) == ["b", "a", "a~aa"] and exp.controls == ["aa"]
    twin, base = exp.variants["a~aa"], exp.variants["a"]
    assert (twin.arch, twin.control, twin.size, twin.cell) == ("a~aa", "aa", None, "a~aa")
    assert twin.train.seed_stream == 1 and base.train.seed_stream == 0 and base.control is None
    assert twin.to_dict()["train"] == {**base.to_dict()["train"], "seed_stream": 1}
    assert (twin.model, twin.data) == (base.model, base.data)
    assert twin.origins["train.seed_stream"] == (str(tmp_path / "exp.yaml"), "controls (aa)")
    assert exp.archs == ["b", "a"]  # the design's variants: the control is none of them
    assert exp.select(["a~aa"]) == ["a~aa"] and exp.baseline_cell("a~aa") == "a"


def test_no_controls_no_twin(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, controls=[]))
    assert list(exp.variants) == ["b", "a"] and exp.controls == [] and "controls" not in exp.to_dict()


def test_a_baseline_on_another_stream_gets_the_next_one(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, variants={"a": {"train": {"seed_stream": 2}}, "b": {}}))
    assert exp.variants["a~aa"].train.seed_stream == 3


@pytest.mark.parametrize("value, problem", [(["ab"], "unknown control 'ab'"), (["aa", "aa"], "repeated control"),
                                            ([1], "unknown control '1'")])
def test_a_bad_control_is_one_line_exit_2_naming_the_key(tmp_path, capsys, value, problem):
    path = experiment_file(tmp_path, controls=value)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.key == "controls" and err.value.file == str(path)
    assert main(["show", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "controls" in lines[0] and problem in lines[0]
    assert "allowed: a list of: aa" in lines[0]


def test_a_control_given_on_the_command_line(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, controls=[]), ["controls=[aa]"])
    assert "a~aa" in exp.variants
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path, controls=[]), ["controls=[bb]"])
    assert err.value.key == "controls" and err.value.file == "command line"


def test_round_trip_through_experiment_yaml(tmp_path):
    exp = load_experiment(experiment_file(tmp_path))
    stored = exp.to_dict()
    assert stored["controls"] == ["aa"] and list(stored["variants"]) == ["b", "a"]  # the twin is added on loading
    again = reload(tmp_path, exp)
    same(again, exp)
    assert again.to_dict() == stored


def test_one_twin_per_size(tmp_path):
    sizes = [{"name": "s32", "dim": 32, "n_heads": 2}, {"name": "s64", "dim": 64, "n_heads": 2}]
    exp = load_experiment(experiment_file(tmp_path, sizes=sizes))
    assert list(exp.variants)[-2:] == ["a~aa@s32", "a~aa@s64"]
    twin = exp.variants["a~aa@s64"]
    assert (twin.arch, twin.size, twin.cell) == ("a~aa", "s64", "a~aa@s64")
    assert twin.model == exp.variants["a@s64"].model and twin.train.seed_stream == 1
    assert exp.baseline_cell("a~aa@s64") == "a@s64"
    same(reload(tmp_path, exp), exp)


def test_one_twin_per_sweep_point(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, sweep={"train.steps": [4, 8]}))
    assert [n for n in exp.variants if exp.variants[n].control] == ["a~aa@steps4", "a~aa@steps8"]
    assert exp.variants["a~aa@steps8"].train.steps == 8
    same(reload(tmp_path, exp), exp)


def test_tuned_the_twin_has_the_baselines_grid(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, tune={"key": "train.lr", "values": [1e-3, 3e-3, 1e-2], "extend": 1}))
    base = {n: v for n, v in exp.variants.items() if v.arch == "a"}
    twins = {n: v for n, v in exp.variants.items() if v.control == "aa"}
    assert list(twins) == ["a~aa@lr=" + n.split("=")[1] for n in base]
    assert [v.point for v in twins.values()] == [v.point for v in base.values()]
    assert all(t.train.lr == b.train.lr and t.train.seed_stream == 1 for t, b in zip(twins.values(), base.values()))
    assert next(iter(twins.values())).cell == "a~aa"
    again = reload(tmp_path, exp)
    same(again, exp)
    assert list(again.to_dict()["variants"]) == ["b", "a"]
