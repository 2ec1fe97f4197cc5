"""Does the verdict hold with scale: per-size verdicts and multipliers, where Δ changes sign (interpolated,
extrapolated or none), ladders (each rung against the previous one, and cumulatively against the first), and the
report sections that show them, on synthetic run folders with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workbench.reports import compare, cumulative, load_results, scale_summary, write_report
from workbench.reports.analysis.scale_verdicts import crossing
from workbench.reports.analysis.verdicts import OWN_SHARE

FPT = 1_000_000  # FLOPs per token of every run group
TOKENS = [1e3, 2e3, 4e3, 8e3, 16e3]  # the baseline's val evals
NOISE = [0.003, -0.003, 0.0]  # per-seed noise of the differences: mean 0, std 0.003
BASE = [3.30, 3.32, 3.28]  # the baseline's final val loss per seed


def loss_at(tokens: float) -> float:
    """The baseline's val curve, log-linear in FLOPs, so a multiplier read off it is exact."""
    return 6.0 - 0.25 * math.log(tokens * FPT / 1e9)


def law_curve(shift: float, tokens: list[float]) -> list[dict]:
    """Val points on the baseline's law shifted in FLOPs: they reach each loss with 1/shift of the baseline's
    tokens, so read off a curve with shift s, the multiplier of shift s' is exactly s' / s."""
    return [{"step": i + 1, "loss": loss_at(t * shift), "tokens": t} for i, t in enumerate(tokens)]


def group(root: Path, name: str, losses: list[float], flops: float, val: list[dict], **keys) -> dict:
    """A run group of three completed seeds with these final losses, training FLOPs and val curve."""
    runs = []
    for seed, loss in enumerate(losses):
        rel = f"{name}/seed{seed}/metrics.json"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps({"train": [], "val": val}))
        runs.append({"seed": seed, "status": "completed", "final_val_loss": loss, "train_flops": flops, "metrics": rel})
    return {"flops_per_token": FPT, "config": {}, **keys, "runs": runs}


def write(root: Path, variants: dict, **top) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"experiment": "x", "baseline": "base", "seeds": [0, 1, 2],
                                                   "variants": variants, **top}))
    return root


SIZES = {"s0": 1e12, "s1": 1e13, "s2": 1e14}  # training FLOPs per size: log10 12, 13, 14


def sweep(root: Path, deltas: list[float], multipliers: list[float]) -> Path:
    """base and v at three sizes; v's per-seed difference is delta + NOISE, its multiplier exact."""
    variants = {}
    for arch in ("base", "v"):
        for (size, flops), delta, m in zip(SIZES.items(), deltas, multipliers):
            losses = BASE if arch == "base" else [b + delta + e for b, e in zip(BASE, NOISE)]
            val = law_curve(1.0, TOKENS) if arch == "base" else law_curve(m, TOKENS[:4])
            variants[f"{arch}@{size}"] = group(root, f"{arch}@{size}", losses, flops, val, arch=arch, size=size)
    return write(root, variants, sizes=list(SIZES))


def summary_of(run_dir: Path) -> dict:
    results = load_results(run_dir)
    out = scale_summary(results, compare(results, run_dir))
    assert json.loads(json.dumps(out)) == out  # what the runner stores as results.json "scale"
    return out


# ------------------------------------------------------------------ across sizes

def test_a_flip_between_the_last_two_sizes_is_interpolated_in_log_compute(tmp_path):
    run_dir = sweep(tmp_path, [-0.10, -0.04, 0.02], [2.0, 1.5, 0.8])
    v = summary_of(run_dir)["by_arch"]["v"]
    rows = v["by_size"]
    assert [r["size"] for r in rows] == ["s0", "s1", "s2"]
    assert [r["compute"] for r in rows] == [1e12, 1e13, 1e14]
    assert [r["verdict"] for r in rows] == ["better", "better", "worse"]
    assert [r["mean"] for r in rows] == pytest.approx([-0.10, -0.04, 0.02])
    assert all(r["low"] < r["mean"] < r["high"] for r in rows)
    for r, m in zip(rows, [2.0, 1.5, 0.8]):
        assert r["multiplier"] == {"mean": pytest.approx(m), "low": pytest.approx(m), "high": pytest.approx(m),
                                   "n": 3, "extrapolated": False}
    # By hand: Δ goes from -0.04 at 10^13 to +0.02 at 10^14, zero 0.04 / 0.06 = 2/3 of the decade on.
    assert v["crossing"] == {"compute": pytest.approx(10 ** (13 + 2 / 3)), "extrapolated": False}
    assert v["crossing_note"] == "Δ changes sign between s1 (-0.0400) and s2 (+0.0200)"

    md = write_report(run_dir).read_text()
    section = md[md.index("## Verdicts across scale"):]
    assert "| v | s2 | 100T | worse | +0.0200 [" in section and "| 0.80x [0.80, 0.80] |" in section
    assert "| v | s0 | 1T | better | -0.1000 [" in section and "| 2.00x [2.00, 2.00] |" in section
    assert "**v: Δ = 0 at 46.4T FLOPs (interpolated)** — Δ changes sign between s1" in section
    for name in ("multiplier_vs_compute", "delta_vs_compute"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"(plots/{name}.png)" in section
    html = (run_dir / "report.html").read_text()
    assert "<h2>Verdicts across scale</h2>" in html and "46.4T FLOPs (interpolated)" in html


def test_a_trend_towards_zero_is_extrapolated_and_labelled(tmp_path):
    run_dir = sweep(tmp_path / "near", [-0.10, -0.06, -0.015], [2.0, 1.5, 1.2])
    v = summary_of(run_dir)["by_arch"]["v"]
    # From -0.06 at 10^13 to -0.015 at 10^14 the line reaches 0 a third of a decade on (2.15x).
    assert v["crossing"] == {"compute": pytest.approx(10 ** (14 + 1 / 3)), "extrapolated": True}
    assert "reaches zero at 2.15× the largest compute" in v["crossing_note"]
    md = write_report(run_dir).read_text()
    assert "**v: Δ = 0 at 215T FLOPs (extrapolated)** — Δ shrinks towards zero from s1 (-0.0600) to s2 (-0.0150)" in md
    assert "<h2>Verdicts across scale</h2>" in (run_dir / "report.html").read_text()
    # From -0.06 to -0.03 it would reach 0 a decade on: beyond half a decade past the data, no digits.
    v = summary_of(sweep(tmp_path / "far", [-0.10, -0.06, -0.03], [2.0, 1.5, 1.2]))["by_arch"]["v"]
    assert v["crossing"] is None and "zero beyond the data (not estimable" in v["crossing_note"]


def test_a_trend_away_from_zero_has_no_crossing_in_range(tmp_path):
    run_dir = sweep(tmp_path, [-0.02, -0.05, -0.09], [1.1, 1.4, 1.9])
    v = summary_of(run_dir)["by_arch"]["v"]
    assert v["crossing"] is None and v["crossing_note"].startswith("no crossing in range")
    md = write_report(run_dir).read_text()
    assert "**v:** no crossing in range: Δ keeps its sign and does not shrink from s1 (-0.0500) to s2 (-0.0900)." in md
    assert (run_dir / "plots" / "multiplier_vs_compute.png").exists()


def rows(*points) -> list[dict]:
    return [{"size": f"s{i}", "compute": c, "mean": y, "verdict": "undecided"} for i, (c, y) in enumerate(points)]


def test_crossing_edge_cases():
    # Several sign changes: the last, past which the sign holds.
    point, note = crossing(rows((1e12, -0.1), (1e13, 0.1), (1e14, -0.1), (1e15, 0.1)))
    assert point == {"compute": pytest.approx(10 ** 14.5), "extrapolated": False} and "3 times" in note
    # Towards zero, but too slowly: the line through the last two reaches 0 at 10^4 x the largest compute, beyond
    # half a decade: not estimable, no digits. Faster, at 10^0.4 = 2.5x: an extrapolated crossing.
    point, note = crossing(rows((1e12, -0.05), (1e13, -0.04)))
    assert point is None and "beyond the data (not estimable: more than 3.2× the largest compute)" in note
    point, note = crossing(rows((1e12, -0.05), (1e13, -0.02 / 1.4)))
    assert point == {"compute": pytest.approx(10 ** 13.4), "extrapolated": True} and "2.51× the largest" in note
    # An equal-FLOPs budget, missing Δ or compute: nothing to interpolate in.
    assert crossing(rows((1e13, -0.05), (1e13, 0.04)))[0] is None
    assert crossing(rows((1e12, -0.05), (None, 0.04), (1e14, None)))[1].startswith("no crossing: fewer than two")
    assert crossing(rows((1e12, 0.0), (1e13, 0.1)))[0] == {"compute": pytest.approx(1e12), "extrapolated": False}


def test_scale_summary_is_empty_without_a_sweep_and_skips_missing_comparisons(tmp_path):
    run_dir = sweep(tmp_path, [-0.10, -0.04, 0.02], [2.0, 1.5, 0.8])
    results = load_results(run_dir)
    comparisons = compare(results, run_dir)
    del comparisons["v@s1"]
    got = scale_summary(results, comparisons)["by_arch"]["v"]
    assert [r["size"] for r in got["by_size"]] == ["s0", "s2"]
    assert got["crossing"]["compute"] == pytest.approx(10 ** (12 + 2 * 0.10 / 0.12))
    results.sizes = ["s0"]
    assert scale_summary(results, comparisons) == {}


# ------------------------------------------------------------------ ladders

RUNGS = {"r0": ({"model": {"norm": "layernorm"}}, 0.0),
         "r1": ({"model": {"norm": "rmsnorm"}}, -0.05),
         "r2": ({"model": {"norm": "rmsnorm", "ffn": "swiglu"}}, -0.02),
         "r3": ({"model": {"norm": "rmsnorm", "ffn": "swiglu", "positions": "rope"}}, 0.03)}
STEP_NOISE = [[0.0] * 3, [0.002, -0.002, 0.0], [0.0, 0.002, -0.002], [-0.002, 0.0, 0.002]]


def ladder(root: Path, sizes: dict[str, float] | None = None) -> Path:
    """Four rungs, each adding one config change; rung k's loss is rung k-1's + its step + noise, per seed, and
    its curve the law shifted by 2^k: every rung-to-rung multiplier is 2, rung k's against the first 2^k."""
    variants = {}
    for size, flops in (sizes or {None: 1e12}).items():
        losses = BASE
        for k, ((arch, (config, step)), noise) in enumerate(zip(RUNGS.items(), STEP_NOISE)):
            losses = [x + step + e for x, e in zip(losses, noise)]
            name = arch if size is None else f"{arch}@{size}"
            keys = {"config": config} | ({} if size is None else {"arch": arch, "size": size})
            variants[name] = group(root, name, losses, flops, law_curve(2.0 ** k, TOKENS if k == 0 else TOKENS[:4]), **keys)
    return write(root, variants, baseline="r0", ladder=True, **({"sizes": list(sizes)} if sizes else {}))


def test_each_rung_is_compared_with_the_previous_one(tmp_path):
    run_dir = ladder(tmp_path)
    results = load_results(run_dir)
    got = compare(results, run_dir)
    assert list(got) == ["r1", "r2", "r3"]
    assert [got[r].baseline for r in got] == ["r0", "r1", "r2"]
    # Rung-to-rung steps, not against r0 (which would be -0.05, -0.07, -0.04).
    assert [got[r].mean for r in got] == pytest.approx([-0.05, -0.02, 0.03])
    assert [got[r].verdict for r in got] == ["better", "better", "worse"]
    # One Holm family of three rungs, each checked against the pool of the others (the pool's share of alpha).
    assert all(got[r].level == pytest.approx(1 - (1 - OWN_SHARE) * 0.05 / 3) for r in got)
    assert [got[r].multiplier.mean for r in got] == pytest.approx([2.0, 2.0, 2.0])

    total = cumulative(results, run_dir)
    assert [total[r].baseline for r in total] == ["r0", "r0", "r0"]
    assert [total[r].mean for r in total] == pytest.approx([-0.05, -0.07, -0.04])
    assert [total[r].multiplier.mean for r in total] == pytest.approx([2.0, 4.0, 8.0])


def test_report_has_a_ladder_table(tmp_path):
    run_dir = ladder(tmp_path)
    md = write_report(run_dir).read_text()
    section = md[md.index("## Ladder"):md.index("## How to read this")]
    lines = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| r")}
    assert lines["r0"].startswith("| r0 | (first rung) | — | — | — | — | — | — |")
    assert lines["r1"].startswith('| r1 | model.norm="rmsnorm" | -0.0500 [')
    assert '| r2 | model.ffn="swiglu" | -0.0200 [' in lines["r2"] and "| better | 2.00x [2.00, 2.00] | -0.0700 [" in lines["r2"]
    assert '| r3 | model.positions="rope" | +0.0300 [' in lines["r3"] and lines["r3"].endswith("| 8.00x [8.00, 8.00] |")
    assert "| Rung | Change from the previous rung | Δ vs previous rung [interval] |" in section
    assert "Δ val loss vs previous rung [interval]" in md and "This experiment is a ladder" in md
    assert "## Verdicts across scale" not in md
    html = (run_dir / "report.html").read_text()
    assert "<h2>Ladder</h2>" in html and "model.ffn=&quot;swiglu&quot;" in html


def test_a_ladder_across_sizes_is_judged_per_rung_and_size(tmp_path):
    run_dir = ladder(tmp_path, {"s0": 1e12, "s1": 1e13})
    results = load_results(run_dir)
    got = compare(results, run_dir)
    assert got["r2@s1"].baseline == "r1@s1" and got["r2@s1"].level == pytest.approx(1 - (1 - OWN_SHARE) * 0.05 / 3)
    scale = scale_summary(results, got)["by_arch"]
    assert list(scale) == ["r1", "r2", "r3"]
    assert [r["mean"] for r in scale["r2"]["by_size"]] == pytest.approx([-0.02, -0.02])
    assert scale["r2"]["crossing"] is None  # the same Δ at both sizes: no trend
    md = write_report(run_dir).read_text()
    assert '| r2 | s1 | model.ffn="swiglu" | -0.0200 [' in md
    assert "| Rung | Size | Training FLOPs | Verdict | Δ val loss vs previous rung [interval] |" in md


def test_old_results_without_ladder_or_sizes_render_as_before(tmp_path):
    variants = {"base": group(tmp_path, "base", BASE, 1e12, law_curve(1.0, TOKENS)),
                "v": group(tmp_path, "v", [x - 0.05 for x in BASE], 1e12, law_curve(2.0, TOKENS[:4]))}
    run_dir = write(tmp_path, variants)
    stale = run_dir / "plots" / "multiplier_vs_compute.png"
    stale.parent.mkdir()
    stale.write_bytes(b"\x89PNG old")
    results = load_results(run_dir)
    assert results.ladder is False and scale_summary(results, compare(results, run_dir)) == {}
    assert cumulative(results, run_dir)["v"].baseline == "base"
    md = write_report(run_dir).read_text()
    assert "## Ladder" not in md and "## Verdicts across scale" not in md and not stale.exists()
    assert "Δ val loss vs baseline [interval]" in md and "This experiment is a ladder" not in md
    # What the runner now stores (per-variant comparisons, "scale") reads back without changing the report.
    data = json.loads((run_dir / "results.json").read_text())
    data["scale"] = {}
    data["variants"]["v"]["comparison"] = compare(results, run_dir)["v"].as_json()
    (run_dir / "results.json").write_text(json.dumps(data))
    assert write_report(run_dir).read_text() == md
    assert "<h2>Results</h2>" in (run_dir / "report.html").read_text()


def test_an_arch_with_no_runs_at_any_size_is_left_out(tmp_path):
    # `run --variant base --variant v` on an experiment that also lists w: w has no runs, so no Δ anywhere.
    run_dir = sweep(tmp_path, [-0.10, -0.04, 0.02], [2.0, 1.5, 0.8])
    data = json.loads((run_dir / "results.json").read_text())
    for size in SIZES:
        data["variants"][f"w@{size}"] = {"flops_per_token": FPT, "config": {}, "arch": "w", "size": size, "runs": []}
    (run_dir / "results.json").write_text(json.dumps(data))
    results = load_results(run_dir)
    assert sorted(scale_summary(results, compare(results, run_dir))["by_arch"]) == ["v"]


def test_a_row_the_data_cannot_bound_reads_not_estimable_with_its_seeds():
    """The stored scale rows keep n, so the section (and docs/findings/table.py) print the point estimate and
    'not estimable at n = k', never a bare number that looks exact or an interval of absurd digits."""
    from workbench.reports.scale_verdicts_section import _delta_text, _multiplier_text

    row = {"mean": 0.4, "low": None, "high": None, "n": 2, "verdict": "undecided"}
    assert _delta_text(row) == "+0.4000 (not estimable at n = 2)"
    assert _delta_text({**row, "verdict": "not learned yet"}) == "+0.4000 (no interval: not learned yet)"
    assert _delta_text({"mean": -0.01, "low": -0.02, "high": 0.0, "n": 3, "verdict": "better"}) == "-0.0100 [-0.0200, +0.0000]"
    assert _multiplier_text({"mean": 6.48, "low": None, "high": None, "n": 2, "extrapolated": False}) == \
        "6.48x (not estimable at n = 2)"
    assert _multiplier_text(None) == "—"
