"""workbench.reports.analysis.comparisons: each run group against its baseline, on synthetic run folders.

The verdict numbers are checked against decide() on hand-paired differences (the statistics themselves are
tested in test_verdicts.py); the compute multiplier against curves whose answer is known exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workbench.reports import Comparison, compare, load_results
from workbench.reports.analysis.verdicts import DEFAULT_MARGIN, OWN_SHARE, SeedPolicy, decide

FPT = 1_000_000  # FLOPs per token of the baseline


def loss_at(tokens: float, fpt: float = FPT) -> float:
    """The baseline's law, loss = 6 - 0.25 ln(FLOPs / 1e9): log-linear, so the multiplier's interpolation is exact."""
    return 6.0 - 0.25 * math.log(tokens * fpt / 1e9)


def log_curve(tokens: list[float]) -> list[dict]:
    return [{"step": i, "loss": loss_at(t) if t else 7.0, "tokens": t} for i, t in enumerate(tokens)]


def write_run_dir(root: Path, groups: dict[str, dict], **top) -> Path:
    """groups: name -> {"runs": {seed: (status, final_val_loss, val_points or None)}, plus variant keys}."""
    variants = {}
    for name, spec in groups.items():
        runs = []
        for seed, (status, loss, val) in spec.pop("runs").items():
            rel = f"{name}/seed{seed}/metrics.json"
            if val is not None:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(json.dumps({"train": [], "val": val}))
            runs.append({"seed": seed, "status": status, "final_val_loss": loss, "metrics": rel})
        variants[name] = {"flops_per_token": FPT, "config": {}, **spec, "runs": runs}
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"experiment": "x", "baseline": "base", "seeds": [0, 1, 2],
                                                   "variants": variants, **top}))
    return root


def done(losses: list[float]) -> dict:
    return {s: ("completed", x, None) for s, x in enumerate(losses)}


def test_diffs_are_paired_by_seed_and_decided_as_one_family(tmp_path):
    base = [3.20, 3.25, 3.22]
    groups = {"base": {"runs": done(base)},
              "a": {"runs": {0: ("completed", 3.10, None), 1: ("diverged", 9.0, None), 2: ("completed", 3.13, None)}},
              "b": {"runs": {0: ("failed", None, None), 1: ("completed", 3.26, None), 2: ("completed", 3.21, None)}}}
    got = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)
    assert list(got) == ["a", "b"]
    # One look at the fixed 3 seeds, Holm over both comparisons: decide() on the same lists, None kept in place.
    want = decide({"a": [3.10 - 3.20, None, 3.13 - 3.22], "b": [None, 3.26 - 3.25, 3.21 - 3.22]},
                  DEFAULT_MARGIN, SeedPolicy(3, 3, 0.05))
    for name in ("a", "b"):
        c, w = got[name], want[name]
        assert (c.verdict, c.n, c.seeds, c.level) == (w.verdict, 2, 3, pytest.approx(1 - 0.05 / 2))
        assert (c.mean, c.low, c.high, c.diff_std, c.seeds_needed) == (w.mean, w.low, w.high, w.diff_std, w.seeds_needed)
        assert c.baseline == "base" and c.size is None and c.margin == DEFAULT_MARGIN and c.multiplier is None


def test_a_seed_not_yet_run_is_no_look(tmp_path):
    # Seed 2 of the baseline is still running: the comparison has 2 of its 3 fixed seeds, before its only look.
    groups = {"base": {"runs": {0: ("completed", 3.2, None), 1: ("completed", 3.3, None)}},
              "same": {"runs": done([3.2, 3.3, 3.4])}}
    c = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["same"]
    assert (c.seeds, c.n, c.verdict, c.low) == (2, 2, "undecided", None)


def test_policy_and_margin_from_results_json(tmp_path):
    base = [3.20, 3.25, 3.22, 3.30]
    groups = {"base": {"runs": done(base)}, "v": {"runs": done([x + 0.002 for x in base])}}
    run_dir = write_run_dir(tmp_path, groups, seeds=[0, 1, 2, 3], seed_policy={"min": 2, "max": 3, "alpha": 0.1},
                            equivalence_margin=0.05)
    results = load_results(run_dir)
    assert results.seed_policy == SeedPolicy(2, 3, 0.1) and results.margin == 0.05
    c = compare(results, run_dir)["v"]
    assert c.seeds == 3 and c.margin == 0.05  # the 4th seed is past max: the first 3 decide
    assert c.verdict == "equivalent" and c.level == pytest.approx(1 - SeedPolicy(2, 3, 0.1).look_alpha(3))


def test_each_size_is_its_own_family(tmp_path):
    groups = {}
    for size, members in (("s0", ["x", "y"]), ("s1", ["x"])):
        groups[f"base@{size}"] = {"arch": "base", "size": size, "runs": done([3.2, 3.3, 3.25])}
        for m in members:
            groups[f"{m}@{size}"] = {"arch": m, "size": size, "runs": done([3.0, 3.15, 3.02])}
    groups["z@s2"] = {"arch": "z", "size": "s2", "runs": done([3.0, 3.1, 3.0])}  # no baseline at s2
    got = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)
    assert set(got) == {"x@s0", "y@s0", "x@s1"}
    assert got["x@s0"].baseline == "base@s0" and got["x@s1"].baseline == "base@s1" and got["x@s1"].size == "s1"
    # Bonferroni over the size's comparisons: 2 at s0, 1 at s1. At s0 the pair's own spread (larger than the rest
    # of the pool's) is tested on the pool's share of alpha; at s1 (its size alone) there is nothing to check
    # against, so its own spread gets all of it.
    assert got["x@s0"].level == pytest.approx(1 - (1 - OWN_SHARE) * 0.05 / 2) and got["x@s0"].variance == "cell"
    assert got["x@s1"].level == pytest.approx(0.95)


def test_multiplier_reads_the_baselines_curve_at_the_variants_last_val_loss(tmp_path):
    tokens = [0, 1e3, 2e3, 4e3, 8e3, 16e3]
    # The variant reaches, at its last eval (8k tokens at 2x the FLOPs/token), the baseline's loss at 12k tokens:
    # 12k * FPT / (8k * 2 FPT) = 0.75 on every seed. final_val_loss (whole split) must not be used.
    variant_val = [{"step": 1, "loss": 9.0, "tokens": 4e3}, {"step": 2, "loss": loss_at(12e3), "tokens": 8e3}]
    groups = {"base": {"runs": {s: ("completed", 3.2, log_curve(tokens)) for s in range(3)}},
              "wide": {"flops_per_token": 2 * FPT, "runs": {s: ("completed", 1.0, variant_val) for s in range(3)}}}
    m = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["wide"].multiplier
    assert m.mean == pytest.approx(0.75, rel=1e-9) and m.per_seed == pytest.approx([0.75] * 3, rel=1e-9)
    assert m.low == pytest.approx(0.75, rel=1e-9) and m.extrapolated is False


def test_multiplier_beyond_the_curve_is_flagged_and_seeds_without_pairs_are_skipped(tmp_path):
    tokens = [1e3, 2e3, 4e3, 8e3]
    below = loss_at(32e3)  # the baseline's line at 4x its last eval
    groups = {"base": {"runs": {0: ("completed", 3.2, log_curve(tokens)), 1: ("completed", 3.2, None),
                                2: ("completed", 3.2, log_curve(tokens))}},
              "v": {"runs": {0: ("completed", 3.1, [{"step": 1, "loss": below, "tokens": 8e3}]),
                             1: ("completed", 3.1, [{"step": 1, "loss": below, "tokens": 8e3}]),
                             2: ("diverged", 3.1, [{"step": 1, "loss": below, "tokens": 8e3}])}}}
    m = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["v"].multiplier
    # Seed 1: no baseline curve; seed 2: diverged. Seed 0 alone, from the line through the last evals: exactly 4x.
    assert m.per_seed == pytest.approx([4.0], rel=1e-9) and m.low is None and m.extrapolated is True


def test_missing_or_broken_metrics_give_no_multiplier_and_no_error(tmp_path):
    # The variant has curves; the baseline's are absent (seeds 1, 2) or not JSON (seed 0).
    groups = {"base": {"runs": done([3.2, 3.3, 3.25])},
              "v": {"runs": {s: ("completed", x, log_curve([1e3, 2e3])) for s, x in enumerate([3.1, 3.2, 3.16])}},
              "no_flops": {"flops_per_token": None, "runs": {s: ("completed", 3.2, log_curve([1e3])) for s in range(3)}}}
    run_dir = write_run_dir(tmp_path, groups)
    (run_dir / "base" / "seed0").mkdir(parents=True)
    (run_dir / "base" / "seed0" / "metrics.json").write_text("{not json")
    got = compare(load_results(run_dir), run_dir)
    assert got["v"].multiplier is None and got["v"].verdict == "better" and got["no_flops"].multiplier is None


def test_as_json_is_the_stored_record(tmp_path):
    # The variant's last eval (2k tokens) is at the baseline's loss at 1k tokens: a multiplier of 0.5.
    val = [{"step": 1, "loss": loss_at(1e3), "tokens": 2e3}]
    groups = {"base": {"runs": {s: ("completed", 3.2 + s / 100, log_curve([1e3, 2e3, 4e3])) for s in range(3)}},
              "v": {"runs": {s: ("completed", 3.3 + s / 100, val) for s in range(3)}}}
    c = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["v"]
    record = json.loads(json.dumps(c.as_json()))
    assert set(record) == {"baseline", "verdict", "n", "seeds", "mean", "low", "high", "estimable", "level",
                           "equivalence_margin", "diff_std", "df", "variance", "seeds_needed", "compute_multiplier",
                           "learned"}
    # No unigram floor in this results.json: whether either side learned is unknown, and said so, not guessed.
    assert record["learned"] == {"variant": None, "baseline": None, "floor": None, "margin": 0.1}
    assert (record["df"], record["variance"], record["estimable"], record["seeds"]) == (2, "cell", True, 3)
    assert record["baseline"] == "base" and record["verdict"] == "worse" and record["n"] == 3
    assert record["mean"] == pytest.approx(0.1) and record["equivalence_margin"] == DEFAULT_MARGIN
    assert record["compute_multiplier"] == {"mean": pytest.approx(0.5), "low": pytest.approx(0.5),
                                            "high": pytest.approx(0.5), "n": 3, "estimable": True,
                                            "extrapolated": False}
    assert isinstance(c, Comparison)


def test_no_baseline_no_comparisons(tmp_path):
    groups = {"a": {"runs": done([3.2, 3.3, 3.25])}, "b": {"runs": done([3.1, 3.2, 3.2])}}
    run_dir = write_run_dir(tmp_path, groups)
    data = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps({**data, "baseline": None}))
    assert compare(load_results(run_dir), run_dir) == {}


def test_a_variant_better_than_the_baseline_ever_got_reads_the_multiplier_off_its_own_curve(tmp_path):
    # The variant reaches every loss with half the tokens: it ends below the baseline's best, and reached the
    # baseline's last loss (8k tokens) at 4k tokens: 2x, interpolated on its own curve, not extrapolated.
    tokens = [1e3, 2e3, 4e3, 8e3]
    faster = [{"step": i + 1, "loss": loss_at(2 * t), "tokens": t} for i, t in enumerate(tokens)]
    groups = {"base": {"runs": {s: ("completed", 3.2, log_curve(tokens)) for s in range(2)}},
              "v": {"runs": {s: ("completed", 3.1, faster) for s in range(2)}}}
    m = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["v"].multiplier
    assert m.per_seed == pytest.approx([2.0, 2.0], rel=1e-6) and m.extrapolated is False


def test_a_ladder_compares_each_rung_with_the_previous_rung_of_its_size_only(tmp_path):
    # r1 was not run at s1: r2@s1 has no comparison rather than one against r0 (two changes at once).
    groups = {f"{arch}@{size}": {"arch": arch, "size": size, "runs": done(losses)}
              for arch, losses in (("r0", [3.2, 3.3, 3.25]), ("r1", [3.1, 3.2, 3.16]), ("r2", [3.0, 3.12, 3.05]))
              for size in ("s0", "s1") if (arch, size) != ("r1", "s1")}
    got = compare(load_results(write_run_dir(tmp_path, groups, baseline="r0", ladder=True)), tmp_path)
    assert {n: c.baseline for n, c in got.items()} == {"r1@s0": "r0@s0", "r2@s0": "r1@s0"}
    assert got["r2@s0"].mean == pytest.approx(((3.0 - 3.1) + (3.12 - 3.2) + (3.05 - 3.16)) / 3)
