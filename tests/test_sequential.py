"""Verdicts end to end: sequential seeds added only where a comparison is undecided, the comparison
recorded in results.json, TensorBoard and the report, and --variant jobs across rounds."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from e2e import results, write_experiment
from workbench.cli import main

pytestmark = pytest.mark.e2e  # trains sweeps (directly or in a module fixture)

# Verdicts are drawn only between models that have learned (0.1 nats below the unigram floor): the tiny model gets
# there in 60 steps at lr 1e-2 (4.23 against a floor of 4.36 at 30; 40 left a 2-layer seed short), not in 12.
LEARNS_STEPS = 60
LEARNS_LR = "train.lr=0.01"

def seeds_of(out: Path, variant: str) -> list[int]:
    return [r["seed"] for r in results(out)["variants"][variant]["runs"]]


COMPARISON_KEYS = {"verdict", "low", "high", "estimable", "equivalence_margin", "compute_multiplier", "seeds_needed",
                   "diff_std", "df", "variance"}


def test_the_same_function_is_equivalent_at_the_third_seed_and_gets_no_more(tmp_path, cache):
    # Two seeds give its own spread 1 df and there is nothing else to pool with: a third seed decides.
    exp = write_experiment(tmp_path, cache, seeds={"min": 2, "max": 4}, baseline="sdpa", steps=LEARNS_STEPS,
                           variants="  sdpa: {}\n  naive: {model: {attention: naive}}")
    out = tmp_path / "out"
    assert main(["run", str(exp), LEARNS_LR, "--out", str(out)]) == 0
    comparison = results(out)["variants"]["naive"]["comparison"]
    assert COMPARISON_KEYS <= set(comparison)
    assert comparison["verdict"] == "equivalent" and comparison["equivalence_margin"] == pytest.approx(0.01)
    assert -0.01 < comparison["low"] <= comparison["high"] < 0.01 and comparison["estimable"] is True
    assert (comparison["df"], comparison["variance"]) == (2, "cell")
    assert seeds_of(out, "naive") == seeds_of(out, "sdpa") == [0, 1, 2]
    report = (out / "report.md").read_text()
    assert "equivalent" in report
    # Speed: every variant's step timed in one process, paired with its baseline, with an interval.
    speed = results(out)["speed"]["variants"]
    assert set(speed) == {"sdpa", "naive"} and speed["naive"]["baseline"] == "sdpa"
    assert speed["naive"]["low"] <= speed["naive"]["ratio"] <= speed["naive"]["high"]
    assert "Speed (paired timing)" in report


def test_an_undecided_comparison_gets_seeds_until_max_and_variant_jobs_continue_the_rounds(tmp_path, cache, caplog):
    # A margin too small to show equivalence and two seeds (df = 1) cannot decide a small effect: a third seed comes.
    caplog.set_level(logging.INFO, logger="workbench")
    exp = write_experiment(tmp_path, cache, seeds={"min": 2, "max": 3}, extra="equivalence_margin: 1.0e-9", steps=LEARNS_STEPS)
    out = tmp_path / "out"
    assert main(["run", str(exp), LEARNS_LR, "--out", str(out), "--variant", "ln"]) == 0  # the baseline is trained for the rounds
    assert seeds_of(out, "ln") == seeds_of(out, "rms") == [0, 1, 2]
    assert "seed 2 for the comparisons still undecided: rms, ln" in caplog.text
    comparison = results(out)["variants"]["ln"]["comparison"]
    assert comparison["n"] == 3 and comparison["equivalence_margin"] == pytest.approx(1e-9)
    if comparison["verdict"] == "undecided":
        assert comparison["seeds_needed"] > 3
    caplog.clear()
    assert main(["run", str(exp), LEARNS_LR, "--out", str(out)]) == 0  # a re-run: every round is already done
    assert "training" not in caplog.text


def test_seed_policy_errors_are_one_line(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, seeds={"min": 3, "max": 2})
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seeds: invalid policy" in err and "min <= max" in err
    exp = write_experiment(tmp_path, cache, extra="reference: {source: x, claims: {rms: best}}")
    assert main(["show", str(exp)]) == 2
    err = capsys.readouterr().err.strip()
    assert "reference.claims.rms" in err and "better, worse, equivalent" in err


def test_three_sizes_give_a_verdict_and_multiplier_per_size_and_a_labelled_crossing(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, seeds=[0, 1], extra="sweep: {model.n_layers: [1, 2, 3]}", steps=LEARNS_STEPS)
    out = tmp_path / "out"
    assert main(["run", str(exp), LEARNS_LR, "--out", str(out)]) == 0
    data = results(out)
    for k in (1, 2, 3):
        comparison = data["variants"][f"ln@n_layers{k}"]["comparison"]
        assert comparison["baseline"] == f"rms@n_layers{k}" and comparison["verdict"] in {"better", "worse", "equivalent", "undecided"}
        assert comparison["compute_multiplier"]["mean"] > 0
        # Two seeds per size: one df each alone; pooled across the sizes, 3 (no verdict, no interval from fewer than 2).
        assert (comparison["variance"], comparison["df"]) in {("pooled", 3), ("cell", 1)}
        if comparison["df"] < 2:
            assert comparison["verdict"] == "undecided" and comparison["low"] is None and not comparison["estimable"]
    scale = data["scale"]["by_arch"]["ln"]
    assert [row["size"] for row in scale["by_size"]] == ["n_layers1", "n_layers2", "n_layers3"]
    assert scale["crossing"] is None or isinstance(scale["crossing"]["extrapolated"], bool)
    report = (out / "report.md").read_text()
    assert "Verdicts across scale" in report
    assert ("interpolated" in report or "extrapolated" in report) if scale["crossing"] else "no crossing in range" in report
    assert (out / "plots" / "multiplier_vs_compute.png").exists()


def test_a_ladder_compares_each_rung_with_the_one_before(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, seeds=[0, 1], baseline="ln", extra="ladder: true",
                           variants="  ln: {model: {norm: layernorm}}\n  rms: {}\n  rms_gelu: {model: {ffn: gelu}}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    variants = results(out)["variants"]
    assert "comparison" not in variants["ln"]
    assert variants["rms"]["comparison"]["baseline"] == "ln" and variants["rms_gelu"]["comparison"]["baseline"] == "rms"
    final = {n: [r["final_val_loss"] for r in v["runs"]] for n, v in variants.items()}
    step = sum(a - b for a, b in zip(final["rms_gelu"], final["rms"])) / 2
    assert variants["rms_gelu"]["comparison"]["mean"] == pytest.approx(step, abs=1e-9)
    report = (out / "report.md").read_text()
    assert "## Ladder" in report and 'model.ffn="gelu"' in report
