"""Horizon families of a WSD steps sweep before anything trains: which runs branch off which, the order they
train in, the steps ``show`` prints and the CPU-time estimate built on them. Trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import estimate as est
from workbench.cli import main
from workbench.config import load_experiment
from workbench.horizon_sweep import Horizons, families, family_costs, trained_steps
from workbench.run_folder import RunFolder

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "horizons_wsd.yaml"  # [100, 200, 400], cooldown 0.2


def load(*overrides: str):
    return load_experiment(EXAMPLE, list(overrides), machine=False)


def by_formula(horizons: list[int], cooldown: float) -> int:
    """The longest horizon in full, each shorter one its cool-down: steps - round(steps x (1 - cooldown))."""
    longest = max(horizons)
    return longest + sum(h - round(h * (1 - cooldown)) for h in horizons if h != longest)


def test_each_variant_is_one_family_longest_first():
    exp = load()
    found = families(exp.variants.values())
    assert set(found) == set(exp.variants)
    assert [v.name for v in found["relu@steps100"]] == ["relu@steps400", "relu@steps200", "relu@steps100"]
    assert found["swiglu@steps200"] is found["swiglu@steps400"] is not found["relu@steps200"]
    assert trained_steps(exp.variants.values()) == {
        "swiglu@steps100": 20, "swiglu@steps200": 40, "swiglu@steps400": 400,
        "relu@steps100": 20, "relu@steps200": 40, "relu@steps400": 400}


def test_cosine_or_a_config_that_differs_beyond_steps_makes_no_family():
    assert families(load("train.schedule=cosine").variants.values()) == {}
    apart = load("variants.relu.train.lr=0.001")  # still one family per variant
    assert len({id(f) for f in families(apart.variants.values()).values()}) == 2
    # a run group's longer twin under another cool-down is not its trunk
    exp = load()
    exp.variants["swiglu@steps400"].train.cooldown = 0.3
    found = families(exp.variants.values())
    assert "swiglu@steps400" not in found and [v.name for v in found["swiglu@steps100"]] == ["swiglu@steps200", "swiglu@steps100"]


@pytest.mark.parametrize("horizons,cooldown", [([100, 200, 400], 0.2), ([8, 16, 32], 0.25), ([50, 300, 120, 1000], 0.1)])
def test_show_prints_the_steps_trained_against_separate_runs(tmp_path, capsys, horizons, cooldown):
    assert main(["show", str(EXAMPLE), f"sweep={{train.steps: {horizons}}}", f"train.cooldown={cooldown}",
                 "train.warmup_steps=5"]) == 0
    out = capsys.readouterr().out
    trained, separate = by_formula(horizons, cooldown), sum(horizons)
    assert (f"steps trained: {trained} per variant and seed ({separate} as separate runs, {trained / separate:.0%})"
            in out), out
    if horizons == [100, 200, 400]:
        assert "steps trained: 460 per variant and seed (700 as separate runs, 66%)" in out  # the numbers


def test_show_says_nothing_of_steps_without_a_wsd_steps_sweep(capsys):
    assert main(["show", str(EXAMPLE), "train.schedule=cosine"]) == 0
    assert "steps trained" not in capsys.readouterr().out


def test_families_that_differ_are_summed_per_seed():
    exp = load("variants.relu.train.cooldown=0.1")
    costs = sorted(family_costs(exp.variants.values()), key=lambda c: c[1])
    assert costs == [([400, 200, 100], 400 + 20 + 10, 700), ([400, 200, 100], 460, 700)]


def test_the_cpu_estimate_counts_the_branched_steps():
    wsd, cosine = load(), load("train.schedule=cosine")
    per_token = wsd.variants["swiglu@steps100"].meta_model().flops_per_token(128), wsd.variants["relu@steps100"].meta_model().flops_per_token(128)
    tokens = 32 * 128  # configs/train/cpu.yaml
    seeds = 2
    saved = (700 - 460) * tokens * sum(per_token) * seeds / est.MEASURED_FLOPS
    assert est.estimate(cosine).seconds - est.estimate(wsd).seconds == pytest.approx(saved, rel=1e-9)
    assert est.estimate(wsd).runs == est.estimate(cosine).runs == 12


def test_a_tuned_sweep_branches_per_grid_point_in_tuning_and_per_cell_in_the_verdict_seeds(capsys):
    assert main(["show", str(EXAMPLE), "tune={values: [1.0e-3, 3.0e-3, 1.0e-2]}"]) == 0
    assert "steps trained: 460 per grid point and seed (700 as separate runs, 66%)" in capsys.readouterr().out
    exp = load("tune={values: [1.0e-3, 3.0e-3, 1.0e-2]}")
    found = families(exp.variants.values())
    assert [v.name for v in found["relu@steps100@lr=0.001"]] == ["relu@steps400@lr=0.001", "relu@steps200@lr=0.001",
                                                                 "relu@steps100@lr=0.001"]


def test_runs_train_longest_first_in_their_places_and_shorter_ones_wait_for_a_held_trunk(tmp_path):
    exp = load("seeds=[0, 1]")
    horizons = Horizons(exp, RunFolder(tmp_path))
    plan = [(n, s) for n in exp.variants for s in (0, 1)]
    ordered = horizons.order(plan)
    assert sorted(ordered) == sorted(plan)
    for variant in ("swiglu", "relu"):
        for seed in (0, 1):
            mine = [n for n, s in ordered if s == seed and n.startswith(variant + "@")]
            assert mine == [f"{variant}@steps400", f"{variant}@steps200", f"{variant}@steps100"]
    assert horizons.order([("relu@steps100", 1), ("swiglu@steps100", 0)]) == [("relu@steps100", 1), ("swiglu@steps100", 0)]
    held = [("relu@steps400", 0)]
    assert horizons.waits("relu@steps100", 0, held) and not horizons.waits("relu@steps100", 1, held)
    assert not horizons.waits("swiglu@steps100", 0, held) and not horizons.waits("relu@steps400", 0, held)


def test_a_run_keeps_checkpoints_for_the_shorter_horizons_and_starts_from_the_longer_ones(tmp_path):
    from workbench.training.branch import branch_points

    exp = load()
    folder = RunFolder(tmp_path)
    horizons = Horizons(exp, folder)
    middle = horizons.horizon("relu@steps200", 3)
    assert [t.steps for t in middle.shorter] == [100]
    assert middle.trunks == (("relu@steps400", folder.checkpoints("relu@steps400", 3)),)
    keep, evals = branch_points(horizons.horizon("relu@steps400", 3))
    assert keep == {160, 80}
    # where the 100- and 200-step runs evaluate up to their decay starts: every 50 steps (cpu.yaml), and
    # the end-dense fractions 0.5, 0.625, 0.75 of 100 (0.875 x 100 = 88 is past 80) and of 200 (100, 125, 150)
    assert evals == {50, 62, 75, 100, 125, 150}
    assert horizons.horizon("relu@steps100", 0).shorter == ()
