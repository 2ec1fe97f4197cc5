"""controls: [aa] end to end: the A/A twin trains from other initial weights on the same batches, is compared
with the baseline in a family of its own, is shown beside the verdicts, survives report --rebuild, and is added
to (and taken from) a run folder without retraining what it holds."""

from __future__ import annotations

import json

import pytest
import torch

from components import TransformerLM
from e2e import results, runs, write_experiment
from workbench.cli import main
from workbench.config import load_experiment
from workbench.reports import compare, load_results
from workbench.training.run import init_seed

pytestmark = pytest.mark.e2e


def test_an_aa_twin_added_to_a_run_folder(tmp_path, cache):
    out = tmp_path / "out"
    for folder in ("plain", "aa"):  # one experiment, with and without the control
        (tmp_path / folder).mkdir()
    plain = write_experiment(tmp_path / "plain", cache, steps=8, every=4)
    assert main(["run", str(plain), "--out", str(out)]) == 0
    before = runs(out)

    exp = write_experiment(tmp_path / "aa", cache, steps=8, every=4, extra="controls: [aa]")
    assert main(["run", str(exp), "--out", str(out)]) == 0
    data, after = results(out), runs(out)
    assert {k: after[k] for k in before} == before  # the runs it held are kept, not trained again
    assert sorted(after) == sorted(before) + [("rms~aa", 0), ("rms~aa", 1)]
    twin, base = data["variants"]["rms~aa"], data["variants"]["rms"]
    assert data["controls"] == ["aa"] and twin["control"] == "aa" and "control" not in base
    assert twin["config"]["train"]["seed_stream"] == 1 and base["config"]["train"]["seed_stream"] == 0

    for seed in (0, 1):  # the same batches, other initial weights: the runs differ from the first step on
        ours, theirs = after[("rms~aa", seed)], after[("rms", seed)]
        assert ours["status"] == theirs["status"] == "completed"
        assert ours["batch_fingerprint"] == theirs["batch_fingerprint"] is not None
        assert ours["final_val_loss"] != theirs["final_val_loss"]
        first = [json.loads((out / name / f"seed{seed}" / "metrics.json").read_text())["train"][0] for name in ("rms", "rms~aa")]
        assert first[0]["step"] == first[1]["step"] and first[0]["loss"] != first[1]["loss"]
    variants = load_experiment(exp).variants
    weights = [TransformerLM(variants[n].transformer_config(base["data"]["vocab_size"]),
                             init_seed=init_seed(0, variants[n].train.seed_stream)).state_dict() for n in ("rms", "rms~aa")]
    assert not torch.equal(weights[0]["embed.weight"], weights[1]["embed.weight"])  # step 0

    report = (out / "report.md").read_text()
    line = next(line for line in report.splitlines() if line.startswith("**A/A control:** "))
    assert "rms vs itself under a second seed stream (rms~aa): **" in line
    assert f"Δ {twin['comparison']['mean']:+.4f}" in line
    assert "over 2 paired seeds — the measured false-positive check of this experiment" in line
    assert "A/A control" in (out / "report.html").read_text()

    assert main(["report", "--rebuild", str(out)]) == 0
    rebuilt = results(out)
    assert rebuilt["controls"] == ["aa"] and rebuilt["variants"]["rms~aa"]["control"] == "aa"
    assert len(rebuilt["variants"]["rms~aa"]["runs"]) == 2

    # Taken out again: its runs stay in results.json, as a variant's do when it leaves the file.
    assert main(["run", str(plain), "--out", str(out)]) == 0
    assert results(out)["controls"] == [] and runs(out) == after

    # Compared with the baseline, in a family of its own: ln's comparison is what it is without the twin.
    assert twin["comparison"]["baseline"] == "rms" and twin["comparison"]["n"] == 2
    alone = compare(load_results(out).design(), out)["ln"]
    assert data["variants"]["ln"]["comparison"]["level"] == pytest.approx(alone.level)
    assert twin["comparison"]["level"] == pytest.approx(alone.level)  # one comparison each
