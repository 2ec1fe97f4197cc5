"""A run folder is self-contained: ``load_run`` rebuilds a trained model and its tokenizer from the folder
alone (cache deleted, folder moved), refuses what it cannot load in one line, and results.json records
the environment the runs were trained in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import workbench
from e2e import REPO, results, write_experiment
from workbench.cli import main
from workbench.config import load_experiment
from workbench.data import DataSettings, prepare
from workbench.environment import current_environment, remember_environment
from workbench.load import LoadError, load_run
from workbench.results import RunFolderError
from workbench.checkpoint_file import IDENTITY_KEY, load_verified

pytestmark = pytest.mark.e2e  # trains sweeps (directly or in a module fixture)

TEXT = "def greet(name):\n    return f'héllo, {name}!'  # ünïcode ✓\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A finished micro experiment (one variant, two seeds, 6 steps) and its resolved variant."""
    root = tmp_path_factory.mktemp("load_run")
    cache = root / "cache"
    exp = write_experiment(root, cache, steps=6, every=3, seeds=(0, 1), variants="  rms: {}")
    out = root / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    variant = load_experiment(exp).variants["rms"]
    data = prepare(DataSettings(**variant.data), base_dir=exp.parent)
    return {"out": out, "cache": cache, "variant": variant, "tokenizer": data.tokenizer, "exp": exp}


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    """A copy of the trained run folder, to damage."""
    return Path(shutil.copytree(trained["out"], tmp_path / "copy"))


def by_hand(trained, seed: int) -> torch.nn.Module:
    """The model rebuilt without load_run: experiment file -> config, checkpoint -> weights."""
    from components import TransformerLM

    checkpoint = torch.load(trained["out"] / "rms" / f"seed{seed}" / "checkpoints" / "last.ckpt", weights_only=True)
    model = TransformerLM(trained["variant"].transformer_config(trained["tokenizer"].vocab_size))
    model.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    return model.eval()


def logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([tokenizer.encode(TEXT)]))


def test_load_run_gives_the_trained_model_in_eval_mode_and_its_tokenizer(trained):
    model, tokenizer = workbench.load_run(trained["out"], "rms")  # seed None: the first completed, seed 0
    assert not model.training
    assert tokenizer.decode(tokenizer.encode(TEXT)) == TEXT
    assert tokenizer.encode(TEXT) == trained["tokenizer"].encode(TEXT)
    torch.testing.assert_close(logits(model, tokenizer), logits(by_hand(trained, 0), tokenizer), rtol=0, atol=0)
    seed1, _ = load_run(trained["out"], "rms", seed=1)
    torch.testing.assert_close(logits(seed1, tokenizer), logits(by_hand(trained, 1), tokenizer), rtol=0, atol=0)
    assert not torch.allclose(logits(seed1, tokenizer), logits(model, tokenizer))


def test_results_json_records_the_environment_of_each_invocation(trained, copy):
    env = results(trained["out"])["environment"]
    assert env["torch"] == torch.__version__ and env["python"]
    assert set(env["workbench"]) == {"version", "commit", "dirty"} and env["workbench"]["version"] == "0.1.0"
    assert isinstance(env["plugins"], list)
    assert [{k: v for k, v in e.items() if k != "since"} for e in results(trained["out"])["environments"]] == [env]
    data = results(copy)  # as if the first invocation had run under another torch
    data["environment"]["torch"] = data["environments"][0]["torch"] = "2.5.0"
    (copy / "results.json").write_text(json.dumps(data))
    assert main(["run", str(trained["exp"]), "--out", str(copy)]) == 0  # every run finished: nothing trains
    after = results(copy)
    assert after["environment"]["torch"] == torch.__version__ and after["environments"][0]["torch"] == "2.5.0"
    assert {k: v for k, v in after["environments"][-1].items() if k != "since"} == after["environment"]


def test_a_copied_folder_loads_with_the_data_cache_deleted(trained, tmp_path):
    expected = logits(*load_run(trained["out"], "rms"))
    shutil.rmtree(trained["cache"])  # the last test to need the cache: nothing below reads it
    torch.testing.assert_close(logits(*load_run(trained["out"], "rms")), expected, rtol=0, atol=0)
    moved = Path(shutil.copytree(trained["out"], tmp_path / "elsewhere"))
    away = trained["out"].rename(tmp_path / "away")  # the copy must not reach back into the original
    try:
        model, tokenizer = load_run(moved, "rms")
    finally:
        away.rename(trained["out"])
    torch.testing.assert_close(logits(model, tokenizer), expected, rtol=0, atol=0)
    assert tokenizer.decode(tokenizer.encode(TEXT)) == TEXT


def test_checkpoint_and_hparams_hold_the_resolved_model_config(trained):
    config = trained["variant"].transformer_config(trained["tokenizer"].vocab_size).to_dict()
    for seed in (0, 1):
        folder = trained["out"] / "rms" / f"seed{seed}"
        identity = load_verified(folder / "checkpoints" / "last.ckpt")[IDENTITY_KEY]
        assert identity["model"] == config and identity["model"]["vocab_size"] == trained["tokenizer"].vocab_size
        hparams = yaml.safe_load((folder / "hparams.yaml").read_text())
        assert hparams["model"] == config and hparams["seed"] == seed and hparams["variant"] == "rms"
        tokenizer = trained["out"] / identity["tokenizer"]
        assert tokenizer.parent.name == "tokenizer" and tokenizer.is_file()
        assert json.loads((folder / "record.json").read_text())["tokenizer"] == identity["tokenizer"]
    assert len(list((trained["out"] / "tokenizer").iterdir())) == 1  # one copy per data config


def test_a_changed_environment_is_kept_in_the_history(caplog):
    old = {**current_environment([]), "torch": "2.5.0"}
    data = {"environment": old, "environments": [{**old, "since": "2025-01-01T00:00:00Z"}]}
    new = current_environment(["json"])  # a plugin module from no distribution: its file's sha256
    remember_environment(data, new)
    assert data["environment"] == new and len(data["environments"]) == 2
    assert data["environments"][0]["torch"] == "2.5.0" and data["environments"][1]["since"]
    assert "torch: '2.5.0' -> " in caplog.text
    assert new["plugins"][0]["module"] == "json" and len(new["plugins"][0]["sha256"]) == 64
    remember_environment(data, new)  # the same again: no new entry
    assert len(data["environments"]) == 2


def load_error(run_dir: Path, variant: str, seed=None) -> str:
    with pytest.raises(LoadError) as info:
        load_run(run_dir, variant, seed)
    message = str(info.value)
    assert isinstance(info.value, RunFolderError) and "\n" not in message and str(run_dir) in message
    return message


def set_run(run_dir: Path, seed: int, **fields) -> None:
    data = results(run_dir)
    for run in data["variants"]["rms"]["runs"]:
        if run["seed"] == seed:
            run.update(fields)
    data["variants"]["rms"]["runs"] = [r for r in data["variants"]["rms"]["runs"] if r.get("status") is not None]
    (run_dir / "results.json").write_text(json.dumps(data))


def test_a_missing_variant_or_seed_is_one_line_listing_what_exists(copy):
    assert "no variant 'layernorm' (variants: rms)" in load_error(copy, "layernorm")
    message = load_error(copy, "rms", seed=5)
    assert "variant 'rms' has no seed 5" in message and "seeds: 0 completed, 1 completed" in message


def test_runs_that_did_not_complete_are_refused(copy):
    set_run(copy, 0, status="diverged", error="loss is nan at step 4")
    message = load_error(copy, "rms", seed=0)
    assert "seed 0 did not complete: diverged (loss is nan at step 4)" in message and "0 diverged, 1 completed" in message
    model, _ = load_run(copy, "rms")  # seed None skips to the first completed seed
    assert torch.equal(model.embed.weight, load_run(copy, "rms", seed=1)[0].embed.weight)
    set_run(copy, 1, status="failed", error="RuntimeError: boom")
    assert "seed 1 did not complete: failed (RuntimeError: boom)" in load_error(copy, "rms", seed=1)
    assert "variant 'rms' has no completed run (seeds: 0 diverged, 1 failed)" in load_error(copy, "rms")
    set_run(copy, 1, status=None)  # no record, a seed folder: in progress or interrupted
    message = load_error(copy, "rms", seed=1)
    assert "seed 1 has not finished" in message and "1 unfinished" in message


def test_a_damaged_checkpoint_is_refused(copy):
    path = copy / "rms" / "seed0" / "checkpoints" / "last.ckpt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    message = load_error(copy, "rms", seed=0)
    assert "variant 'rms' seed 0: damaged checkpoint" in message and "do not match the checksum" in message
    assert "completed seeds: 0, 1" in message
    load_run(copy, "rms", seed=1)  # the other seed is untouched


def test_a_missing_tokenizer_is_refused(copy):
    shutil.rmtree(copy / "tokenizer")
    message = load_error(copy, "rms")
    assert "variant 'rms' seed 0: missing tokenizer" in message and str(copy / "tokenizer") in message


def test_a_fresh_process_loads_a_run_without_importing_lightning(trained):
    code = ("import sys, workbench; assert 'lightning' not in sys.modules and 'workbench.load' not in sys.modules; "
            f"model, tokenizer = workbench.load_run({str(trained['out'])!r}, 'rms'); "
            "print('lightning' in sys.modules, tokenizer.decode(tokenizer.encode('x = 1')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.strip() == "False x = 1"
