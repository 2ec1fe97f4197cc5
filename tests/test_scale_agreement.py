"""Decision accuracy across scale (results.json scale.agreement): per smaller size, the share of variant pairs
ordered as at the largest size and of decided verdicts that hold there, on synthetic run folders whose pair
differences are set by hand (ties, missing pairs, a ladder, the target chosen by compute, one size: none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.reports import compare, load_results, scale_summary, write_report
from workbench.reports.analysis.scale_verdicts import agreement, pair_delta, target_size
from workbench.reports.load import Run, Variant

BASE = [3.30, 3.32, 3.28]  # the baseline's final val loss per seed
SMALL = [0.003, -0.003, 0.0]  # per-seed noise that leaves a 0.05-0.1 effect decided with 3 seeds
LARGE = [0.30, -0.30, 0.0]  # per-seed noise that leaves a 0.02 effect undecided
FLOPS = {"s0": 1e12, "s1": 1e13, "s2": 1e14}


def group(losses: list[float | None], flops: float, **keys) -> dict:
    """A run group with these final losses per seed (None: the seed failed)."""
    runs = [{"seed": s, "status": "completed", "final_val_loss": x, "train_flops": flops} if x is not None
            else {"seed": s, "status": "failed"} for s, x in enumerate(losses)]
    return {"flops_per_token": 1000, "config": {}, **keys, "runs": runs}


def shifted(delta: float, noise: list[float]) -> list[float]:
    return [b + delta + e for b, e in zip(BASE, noise)]


def write(root: Path, cells: dict[tuple[str, str], list[float | None]], sizes: list[str], **top) -> Path:
    """results.json of the run groups ``cells`` ((arch, size) -> losses), each size at FLOPS[size]."""
    variants = {f"{arch}@{size}": group(losses, FLOPS[size], arch=arch, size=size) for (arch, size), losses in cells.items()}
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"experiment": "x", "baseline": "base", "seeds": [0, 1, 2],
                                                   "sizes": sizes, "variants": variants, **top}))
    return root


def three_variants(root: Path) -> Path:
    """base, v, w at s0, s1, s2 (the target). Pair Δs (second - first), by hand:
        (base, v): -0.10 | 0 (identical losses: a tie) | -0.03
        (base, w): +0.02 (undecided) | -0.05 | +0.04
        (v, w):    +0.12 | -0.05 | +0.07
    """
    cells = {}
    for size in FLOPS:
        cells[("base", size)] = BASE
    cells[("v", "s0")], cells[("v", "s1")], cells[("v", "s2")] = shifted(-0.10, SMALL), BASE, shifted(-0.03, SMALL)
    cells[("w", "s0")], cells[("w", "s1")], cells[("w", "s2")] = (shifted(0.02, LARGE), shifted(-0.05, SMALL),
                                                                 shifted(0.04, SMALL))
    return write(root, cells, list(FLOPS))


def agreement_of(run_dir: Path) -> dict | None:
    results = load_results(run_dir)
    got = agreement(results, compare(results, run_dir))
    assert json.loads(json.dumps(got)) == got  # what the runner stores as results.json scale.agreement
    return got


def pairs_of(entry: dict) -> dict[tuple[str, str], dict]:
    return {(p["first"], p["second"]): p for p in entry["list"]}


def test_shares_of_ordered_pairs_and_of_decided_verdicts(tmp_path):
    got = agreement_of(three_variants(tmp_path))
    assert got["target"] == "s2" and [e["size"] for e in got["by_size"]] == ["s0", "s1"]
    s0, s1 = got["by_size"]

    pairs = pairs_of(s0)
    assert list(pairs) == [("base", "v"), ("base", "w"), ("v", "w")]
    assert [pairs[k]["delta"] for k in pairs] == pytest.approx([-0.10, 0.02, 0.12])
    assert [pairs[k]["target_delta"] for k in pairs] == pytest.approx([-0.03, 0.04, 0.07])
    assert [pairs[k]["verdict"] for k in pairs] == ["better", "undecided", None]  # (v, w) is no comparison
    assert [pairs[k]["agrees"] for k in pairs] == [True, True, True]
    assert [pairs[k]["verdict_holds"] for k in pairs] == [True, None, None]
    assert s0["pairs"] == {"agree": 3, "n": 3, "share": 1.0}
    assert s0["decided"] == {"agree": 1, "n": 1, "share": 1.0}

    pairs = pairs_of(s1)
    assert pairs["base", "v"]["delta"] == 0.0 and pairs["base", "v"]["agrees"] is None  # a tie has no order
    assert pairs["base", "w"]["verdict"] == "better" and pairs["base", "w"]["verdict_holds"] is False
    assert [pairs[k]["agrees"] for k in [("base", "w"), ("v", "w")]] == [False, False]
    assert s1["pairs"] == {"agree": 0, "n": 2, "share": 0.0}
    assert s1["decided"] == {"agree": 0, "n": 1, "share": 0.0}


def test_the_report_gives_each_share_with_its_k_and_n_and_lists_the_pairs(tmp_path):
    run_dir = three_variants(tmp_path)
    md = write_report(run_dir).read_text()
    section = md[md.index("### Decision accuracy"):]
    assert "### Decision accuracy: does a smaller size order the variants as s2 does?" in section
    assert "| s0 | 100% (3 of 3) | 100% (1 of 1) |" in section
    assert "| s1 | 0% (0 of 2) | 0% (0 of 1) |" in section
    assert "| s0 | v − base | -0.1000 | better | -0.0300 | yes | yes |" in section
    assert "| s1 | v − base | +0.0000 | equivalent | -0.0300 | tie | — |" in section
    assert "| s1 | w − v | -0.0500 | — | +0.0700 | no | — |" in section
    assert "Decision accuracy" in (run_dir / "report.html").read_text()
    stored = scale_summary(load_results(run_dir), compare(load_results(run_dir), run_dir))
    assert set(stored) == {"by_arch", "agreement"} and stored["agreement"]["target"] == "s2"


def test_a_pair_missing_at_either_size_is_listed_and_not_counted(tmp_path):
    cells = {("base", s): BASE for s in FLOPS}
    cells[("v", "s0")], cells[("v", "s2")] = shifted(-0.10, SMALL), shifted(-0.05, SMALL)
    cells[("v", "s1")] = [None, None, None]  # every seed failed at s1
    cells[("x", "s0")] = shifted(0.10, SMALL)  # x ran at s0 only: no order at the target
    got = agreement_of(write(tmp_path, cells, list(FLOPS)))
    s0, s1 = got["by_size"]
    pairs = pairs_of(s0)
    assert pairs["base", "x"]["target_delta"] is None and pairs["base", "x"]["agrees"] is None
    assert pairs["base", "x"]["verdict"] == "worse" and pairs["base", "x"]["verdict_holds"] is None
    assert pairs["v", "x"]["delta"] == pytest.approx(0.20) and pairs["v", "x"]["agrees"] is None
    assert s0["pairs"] == {"agree": 1, "n": 1, "share": 1.0} and s0["decided"] == {"agree": 1, "n": 1, "share": 1.0}
    assert [p["delta"] for p in s1["list"]] == [None, None, None]
    assert s1["pairs"] == {"agree": 0, "n": 0, "share": None} and s1["decided"]["n"] == 0
    md = write_report(tmp_path).read_text()
    assert "| s1 | no ordered pairs | no decided verdicts |" in md


def test_a_ladder_pairs_every_two_rungs_and_judges_its_rung_to_rung_verdicts(tmp_path):
    """Rung steps -0.05, -0.02, +0.03 at s0 and -0.05, +0.02, +0.04 at s1 (the target): rung j minus rung i is the
    sum of the steps between them. By hand, s0 -> s1: (r0,r1) -0.05 -> -0.05, (r0,r2) -0.07 -> -0.03,
    (r0,r3) -0.04 -> +0.01, (r1,r2) -0.02 -> +0.02, (r1,r3) +0.01 -> +0.06, (r2,r3) +0.03 -> +0.04: 4 of 6 agree.
    The rung-to-rung verdicts at s0 (better, better, worse) hold at s1 for r1 and r3, not r2: 2 of 3."""
    noise = [[0.0] * 3, [0.002, -0.002, 0.0], [0.0, 0.002, -0.002], [-0.002, 0.0, 0.002]]
    cells = {}
    for size, steps in (("s0", [0.0, -0.05, -0.02, 0.03]), ("s1", [0.0, -0.05, 0.02, 0.04])):
        losses = BASE
        for k, (step, e) in enumerate(zip(steps, noise)):
            losses = [x + step + n for x, n in zip(losses, e)]
            cells[(f"r{k}", size)] = losses
    got = agreement_of(write(tmp_path, cells, ["s0", "s1"], baseline="r0", ladder=True))
    assert got["target"] == "s1" and len(got["by_size"]) == 1
    entry = got["by_size"][0]
    pairs = pairs_of(entry)
    assert list(pairs) == [("r0", "r1"), ("r0", "r2"), ("r0", "r3"), ("r1", "r2"), ("r1", "r3"), ("r2", "r3")]
    assert [p["delta"] for p in pairs.values()] == pytest.approx([-0.05, -0.07, -0.04, -0.02, 0.01, 0.03])
    assert [p["target_delta"] for p in pairs.values()] == pytest.approx([-0.05, -0.03, 0.01, 0.02, 0.06, 0.04])
    assert [p["agrees"] for p in pairs.values()] == [True, True, False, False, True, True]
    assert [p["verdict"] for p in pairs.values()] == ["better", None, None, "better", None, "worse"]
    assert entry["pairs"] == {"agree": 4, "n": 6, "share": pytest.approx(4 / 6)}
    assert entry["decided"] == {"agree": 2, "n": 3, "share": pytest.approx(2 / 3)}


def test_pairs_are_oriented_as_compared_and_the_target_is_the_most_compute(tmp_path):
    # The baseline listed second, sizes listed largest first: the pair is (base, v), the target s2.
    cells = {("v", s): shifted(-0.05, SMALL) for s in FLOPS} | {("base", s): BASE for s in FLOPS}
    got = agreement_of(write(tmp_path, cells, ["s2", "s1", "s0"]))
    assert got["target"] == "s2" and [e["size"] for e in got["by_size"]] == ["s1", "s0"]
    assert pairs_of(got["by_size"][0])["base", "v"]["delta"] == pytest.approx(-0.05)


def test_the_target_is_the_planned_compute_then_the_last_point_on_a_tie(tmp_path):
    cells = {(a, s): BASE for a in ("base", "v") for s in ("s0", "s1")}
    results = load_results(write(tmp_path, cells, ["s0", "s1"]))
    for v in results.variants:  # configured steps say s0 is the larger, whatever the runs' FLOPs say
        v.config = {"train": {"steps": 400 if v.size == "s0" else 100, "batch_size": 8, "seq_len": 32}}
    assert target_size(results) == "s0"
    for v in results.variants:  # a sweep of the learning rate: the same compute everywhere
        v.config["train"]["steps"] = 100
    assert target_size(results) == "s1"


def test_one_size_or_one_variant_gives_no_agreement(tmp_path):
    one_size = write(tmp_path / "a", {("base", "s0"): BASE, ("v", "s0"): shifted(-0.1, SMALL)}, ["s0"])
    results = load_results(one_size)
    assert agreement(results, {}) is None and scale_summary(results, compare(results, one_size)) == {}
    one_variant = write(tmp_path / "b", {("base", s): BASE for s in FLOPS}, list(FLOPS))
    results = load_results(one_variant)
    assert agreement(results, {}) is None and scale_summary(results, compare(results, one_variant)) == {}
    assert "Decision accuracy" not in write_report(one_variant).read_text()


def test_pair_delta_pairs_the_seeds_both_completed():
    a = Variant("a", 0, {}, None, None, None, [Run(0, "completed", final_val_loss=3.0), Run(1, "completed", final_val_loss=3.5),
                                                Run(2, "diverged")])
    b = Variant("b", 1, {}, None, None, None, [Run(0, "completed", final_val_loss=2.9), Run(1, "failed"),
                                                Run(2, "completed", final_val_loss=1.0)])
    assert pair_delta(a, b) == pytest.approx(-0.1)  # seed 0 only: 1 failed for b, 2 diverged for a
    assert pair_delta(a, None) is None and pair_delta(Variant("c", 2, {}, None, None, None), b) is None
