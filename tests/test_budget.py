"""budget: steps / tokens / flops / tokens_per_param resolved into each variant's train.steps at load
time, recorded in results.json and shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from components import TransformerLM
from e2e import write_experiment
from workbench.cli import main
from workbench.config import load_experiment
from workbench.config.budget import world_size

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [str(ROOT / f"configs/{p}.yaml") for p in ("model/llama", "size/tiny", "data/stdlib", "train/cpu")]
# Three variants with different FLOPs per token (depth, width, FFN).
VARIANTS = {"a": {}, "deep": {"model": {"n_layers": 6}}, "narrow": {"model": {"dim": 64, "ffn": "gelu"}}}


def experiment(tmp_path: Path, budget: dict | None, variants=VARIANTS) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "defaults": PRESETS, "seeds": [0], "budget": budget, "variants": variants}))
    return path


def cost(variant) -> tuple[int, int, int]:
    """(tokens per step, FLOPs per token, total params) straight from the model."""
    with torch.device("meta"):
        model = TransformerLM(variant.transformer_config())
    tokens = variant.train.batch_size * variant.train.seq_len
    return tokens, model.flops_per_token(variant.train.seq_len), model.num_params()


def test_flops_budget_gives_each_variant_its_steps_within_half_a_step(tmp_path):
    budget = 3.0e13
    exp = load_experiment(experiment(tmp_path, {"flops": budget}))
    steps = {}
    for name, v in exp.variants.items():
        tokens, fpt, _ = cost(v)
        step_flops = tokens * fpt
        steps[name] = v.train.steps
        assert abs(v.train.steps * step_flops - budget) <= step_flops / 2, name
    assert len(set(steps.values())) == 3 and steps["deep"] < steps["a"] < steps["narrow"]


def test_tokens_and_tokens_per_param_budgets(tmp_path):
    exp = load_experiment(experiment(tmp_path, {"tokens": 1_000_000}))
    for v in exp.variants.values():
        assert v.train.steps == round(1_000_000 / (32 * 128)) == 244
    exp = load_experiment(experiment(tmp_path, {"tokens_per_param": 20}))
    for v in exp.variants.values():
        tokens, _, params = cost(v)  # total parameters, tied weights once: Chinchilla's count
        assert v.train.steps == round(20 * params / tokens)
    assert exp.variants["deep"].train.steps > exp.variants["a"].train.steps


def test_steps_budget_and_a_command_line_budget_replaces_the_files(tmp_path):
    path = experiment(tmp_path, {"flops": 3.0e13})
    exp = load_experiment(path, ["budget.steps=7"])
    assert exp.budget == {"steps": 7} and {v.train.steps for v in exp.variants.values()} == {7}
    exp = load_experiment(path, ["budget=null", "train.steps=9"])  # no budget: train.steps as written
    assert exp.budget is None and {v.train.steps for v in exp.variants.values()} == {9}


def test_resolved_experiment_yaml_reloads_to_the_same_steps(tmp_path):
    exp = load_experiment(experiment(tmp_path, {"flops": 3.0e13}))
    resolved = tmp_path / "run" / "experiment.yaml"
    resolved.parent.mkdir()
    resolved.write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    again = load_experiment(resolved)  # train.steps is written there, and agrees with the budget
    assert again.to_dict() == exp.to_dict()


@pytest.mark.parametrize("train, expected", [
    ({"devices": 1, "num_nodes": 1, "accelerator": "cpu"}, 1),
    ({"devices": 2, "num_nodes": 3, "accelerator": "cpu"}, 6),
    ({"devices": "0,1", "num_nodes": 1, "accelerator": "gpu"}, 2),
    ({"devices": "auto", "num_nodes": 1, "accelerator": "cpu"}, 1),
])
def test_world_size_of_a_step(train, expected):
    assert world_size(train) == expected


# ------------------------------------------------------------------ end to end



@pytest.mark.e2e
def test_flops_budget_end_to_end_recorded_and_reported(tmp_path, cache):
    budget = 1.0e9
    exp = write_experiment(tmp_path, cache, steps=None, seeds=[0], extra=f"budget: {{flops: {budget}}}",
                           variants="  rms: {}\n  deep: {model: {n_layers: 2}}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["budget"] == {"flops": budget}
    got = {}
    for name, entry in results["variants"].items():
        run, = entry["runs"]
        step_flops = entry["flops_per_token"] * 8 * 32
        assert run["status"] == "completed" and run["steps"] == entry["config"]["train"]["steps"]
        assert run["train_flops"] == run["steps"] * step_flops
        assert abs(run["train_flops"] - budget) <= step_flops, name  # within one step's worth
        got[name] = run["steps"]
    assert got["deep"] < got["rms"]
    md = (out / "report.md").read_text()
    assert "equal training FLOPs: 1G per run" in md
    compute = md[md.index("## Compute"):]
    for name, steps in got.items():
        row = next(line for line in compute.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {steps:,} |" in row and "one step =" in row


@pytest.mark.parametrize("override, needle", [
    ("budget.flops=10", "budget.flops: 10 is less than one training step"),
    ("budget.tokens=-1", "budget.tokens: invalid value -1"),
    ("budget.flop=1e9", "did you mean 'flops'"),
])
@pytest.mark.e2e
def test_bad_budget_exits_2_with_one_line(tmp_path, cache, capsys, override, needle):
    exp = write_experiment(tmp_path, cache, steps=None, seeds=[0], extra="budget: {tokens: 10000}")
    assert main(["run", str(exp), override, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and not (tmp_path / "out").exists()
