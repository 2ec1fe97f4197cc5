"""Tuned sweeps end to end: every variant tuned on its own grid, verdicts at each one's optimum (checkable
from results.json alone), a diverging grid point never chosen, SIGKILL mid-grid resumed to the same results,
and a changed grid refused with exit 2 naming the key."""

from __future__ import annotations

import math
import shutil
import signal

import pytest

from e2e import cli, results, runs, wait_for, write_experiment
from workbench.cli import main

pytestmark = pytest.mark.e2e

GRID = "tune: {values: [1.0e-3, 1.0e-2, 1.0e-1], extend: 1}"


def chosen_entries(data: dict) -> dict[str, dict]:
    return {n: e for n, e in data["variants"].items() if "tuning" in e}


def check_verdicts_use_each_optimum(data: dict) -> None:
    """What a reader of results.json relies on: every compared run sits at its variant's tuning.best."""
    chosen = chosen_entries(data)
    assert {e["arch"] for e in chosen.values()} == {"rms", "ln"}
    for name, entry in data["variants"].items():
        for run in entry["runs"]:
            assert run["tuned_value"] == entry["tuned"]["value"]
        if name not in chosen:
            assert "comparison" not in entry and {r["seed"] for r in entry["runs"]} <= {0}  # the tuning seed only
    for name, entry in chosen.items():
        t = entry["tuning"]
        assert entry["tuned"]["value"] == t["best"] and t["best"] in t["grid"]
        assert {r["seed"] for r in entry["runs"]} == {0, 1}  # the tuning run counts as one verdict seed
        assert all(r["tuned_value"] == t["best"] for r in entry["runs"])
        assert not t["diverged"][t["grid"].index(t["best"])]
        losses = [x for x, d in zip(t["loss"], t["diverged"]) if not d]
        if t["edge"] is None:
            assert min(t["grid"]) < t["best"] < max(t["grid"])
        else:  # flagged, never interior
            assert t["best"] == (min(t["grid"]) if t["edge"] == "low" else max(t["grid"]))
        assert math.isfinite(t["sensitivity"]) and t["sensitivity"] >= 0 and min(losses) <= t["best_loss"] + 1e-12
    ln = next(e for e in chosen.values() if e["arch"] == "ln")
    assert ln["comparison"]["baseline"] == next(n for n, e in chosen.items() if e["arch"] == "rms")
    assert ln["comparison"]["n"] == 2


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, cache):
    folder = tmp_path_factory.mktemp("tuned")
    exp = write_experiment(folder, cache, name="tuned", extra=GRID)
    out = folder / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    return exp, out


def test_each_variant_is_compared_at_its_own_optimum(tuned):
    exp, out = tuned
    data = results(out)
    assert data["tune"]["tuning_seeds"] == [0] and data["tune"]["values"] == [1e-3, 1e-2, 1e-1]
    check_verdicts_use_each_optimum(data)
    report = (out / "report.md").read_text()
    assert "## Learning rate" in report and (out / "plots" / "tuning.png").exists()


def test_a_changed_grid_is_refused_naming_the_key_and_nothing_is_written(tuned, tmp_path):
    exp, out = tuned
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.suffix in (".json", ".yaml")}
    for override, key in (("tune.values=[1.0e-3,3.0e-3,1.0e-1]", "tune.values"), ("tune.extend=0", "tune.extend"),
                          ("tune=null", "tune")):
        proc = cli("run", str(exp), "--out", str(copy), override)
        _, err = proc.communicate(timeout=120)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert proc.returncode == 2 and len(errors) == 1 and f" {key} changed" in errors[0] and "Traceback" not in err, err
    after = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.suffix in (".json", ".yaml")}
    assert after == before


def test_a_changed_value_under_multipliers_is_refused(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, name="mult", seeds=[0], steps=4, extra="tune: {multipliers: [0.5, 1, 2], extend: 0}",
                           variants="  rms: {}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    proc = cli("run", str(exp), "--out", str(out), "train.lr=0.01")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "tuning grid of 'rms'" in err and "train.lr" in err, err
    assert main(["run", str(exp), "--out", str(out), "train.lr=0.01", "--restart", "rms"]) == 0


def test_a_diverging_top_of_the_grid_is_never_chosen(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, name="div", seeds=[0, 1], steps=8,
                           extra="tune: {values: [1.0e-3, 1.0e-2, 1.0e+30], extend: 1}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    data = results(out)
    for entry in data["variants"].values():
        if entry["tuned"]["value"] == 1e30:
            assert [r["status"] for r in entry["runs"]] == ["diverged"]
    check_verdicts_use_each_optimum(data)
    for entry in chosen_entries(data).values():
        assert entry["tuning"]["diverged"][-1] and entry["tuning"]["best"] != 1e30


def test_sigkill_mid_grid_resumes_to_the_same_results(tuned, tmp_path, cache):
    _, reference = tuned
    exp = write_experiment(tmp_path, cache, name="tuned", extra=GRID)
    out = tmp_path / "out"
    proc = cli("run", str(exp), "--out", str(out))
    wait_for(proc, out, "rms@lr=0.01/seed0/checkpoints/*.ckpt.sha256", timeout=300)  # the second grid point is training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "ln@lr=0.001" / "seed0" / "record.json").exists(), "the grid finished before it could be killed"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    resumed, uninterrupted = runs(out), runs(reference)
    assert resumed.keys() == uninterrupted.keys()
    for key, run in uninterrupted.items():
        assert resumed[key]["status"] == run["status"]
        assert resumed[key]["final_val_loss"] == pytest.approx(run["final_val_loss"], abs=1e-4), key
    assert {n: e.get("tuning", {}).get("best") for n, e in results(out)["variants"].items()} == {
        n: e.get("tuning", {}).get("best") for n, e in results(reference)["variants"].items()}


def test_report_rebuild_of_a_tuned_folder_gives_the_same_results(tuned, tmp_path):
    _, out = tuned
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "results.json").unlink()
    assert main(["report", "--rebuild", str(copy)]) == 0
    before, after = results(out), results(copy)
    assert after["tune"] == before["tune"] and list(after["variants"]) == list(before["variants"])
    strip = ("tokens_per_sec", "wall_time_s")
    for name, entry in before["variants"].items():
        assert [{k: v for k, v in r.items() if k not in strip} for r in after["variants"][name]["runs"]] == [
            {k: v for k, v in r.items() if k not in strip} for r in entry["runs"]]
        assert after["variants"][name].get("tuning") == entry.get("tuning")


def test_sample_and_load_take_a_tuned_variants_name_as_its_optimum(tuned, capsys):
    from workbench import load_run

    _, out = tuned
    chosen = {e["arch"]: n for n, e in results(out)["variants"].items() if "tuning" in e}
    model, _ = load_run(out, "ln")
    assert model.config.norm == "layernorm"
    assert main(["sample", str(out), "--prompt", "def f", "--max-new-tokens", "3"]) == 0
    shown = capsys.readouterr().out
    assert all(name in shown for name in chosen.values())  # each variant at its optimum, not every grid point
    grid_only = [n for n, e in results(out)["variants"].items() if "tuning" not in e and e["runs"]]
    assert not any(f"== {n}" in shown or f"{n} seed" in shown for n in grid_only)


def test_two_tuning_seeds_give_a_paired_sensitivity_difference_in_results_json(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, name="two", seeds=[0, 1], steps=6,
                           extra="tune: {values: [1.0e-3, 1.0e-2, 1.0e-1], seeds: 2, extend: 0}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    chosen = chosen_entries(results(out))
    ln = next(e for e in chosen.values() if e["arch"] == "ln")
    rms = next(e for e in chosen.values() if e["arch"] == "rms")
    d = ln["tuning"]["sensitivity_vs_baseline"]
    assert d["n"] == 2 and d["low"] <= d["mean"] <= d["high"] and d["values"] == [1e-3, 1e-2, 1e-1]
    assert rms["tuning"]["sensitivity_vs_baseline"] is None  # the baseline itself
    assert all({r["seed"] for r in e["runs"]} == {0, 1} for e in results(out)["variants"].values())
