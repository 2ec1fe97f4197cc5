"""Scaling sweeps: sizes expand into <variant>@<size> run groups; the power-law fit recovers known laws
and their crossing; the report states the fit, the winner and the crossing, and plots them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import optimize

from e2e import write_experiment
from workbench.cli import main
from workbench.config import load_experiment
from workbench.reports import write_report
from workbench.reports.analysis.scaling import crossings, fit_power_law

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [str(ROOT / f"configs/{p}.yaml") for p in ("model/llama", "size/tiny", "data/stdlib", "train/cpu")]


def law(E: float, A: float, alpha: float, c0: float = 1e12):
    return lambda c: E + A * (np.asarray(c, dtype=np.float64) / c0) ** (-alpha)


# ------------------------------------------------------------------ the fit

@pytest.mark.parametrize("E, A, alpha", [(1.7, 0.8, 0.3), (2.5, 3.0, 0.12), (0.9, 1.5, 0.6)])
def test_fit_recovers_alpha_within_5_percent_from_noisy_points(E, A, alpha):
    compute = np.geomspace(1e12, 1e16, 8)
    rng = np.random.default_rng(0)
    loss = law(E, A, alpha)(compute) * (1 + 0.002 * rng.standard_normal(compute.size))  # 0.2% noise
    fit = fit_power_law(compute, loss, c0=1e12)
    assert fit.alpha == pytest.approx(alpha, rel=0.05)
    assert fit.E == pytest.approx(E, rel=0.05) and fit.n == 8
    assert fit.alpha_err is not None and abs(fit.alpha - alpha) < 4 * fit.alpha_err + 1e-9
    assert fit.rmse < 0.01 * loss.mean()


def test_fit_without_spare_points_has_no_uncertainty_and_needs_a_compute_range():
    compute = [1e12, 1e13, 1e14]
    fit = fit_power_law(compute, law(2.0, 1.0, 0.3)(compute))
    assert fit.alpha == pytest.approx(0.3, rel=1e-3) and fit.alpha_err is None and fit.c0 == 1e12
    with pytest.raises(ValueError, match="at least 3 distinct"):
        fit_power_law([1e12, 1e12, 1e13], [3.0, 3.1, 2.9])
    with pytest.raises(ValueError, match="span only"):  # an equal-FLOPs budget: every size at ~the same compute
        fit_power_law([1.0e12, 1.001e12, 0.999e12], [3.0, 3.1, 2.9])


def test_crossing_of_fitted_laws_matches_the_analytic_one():
    # Same alpha: E1 + A1 x^-a = E2 + A2 x^-a  <=>  x = ((E2 - E1) / (A1 - A2))^(-1/a)
    E1, A1, E2, A2, a = 2.0, 1.5, 2.2, 1.0, 0.4
    exact = 1e12 * ((E2 - E1) / (A1 - A2)) ** (-1 / a)
    compute = np.geomspace(1e12, 1e15, 6)
    f = fit_power_law(compute, law(E1, A1, a)(compute), c0=1e12)
    g = fit_power_law(compute, law(E2, A2, a)(compute), c0=1e12)
    found = crossings(f, g, 1e11, 1e16)
    assert len(found) == 1 and found[0] == pytest.approx(exact, rel=0.02)
    assert crossings(f, g, 1e13, 1e16) == []  # none past it: f stays below g


def test_crossing_of_different_exponents_matches_brentq_on_the_true_laws():
    f_true, g_true = law(2.0, 1.2, 0.35), law(2.3, 0.6, 0.2)
    exact = math.exp(optimize.brentq(lambda t: float(f_true(math.exp(t)) - g_true(math.exp(t))), math.log(1e11), math.log(1e17)))
    compute = np.geomspace(1e12, 1e16, 7)
    f, g = fit_power_law(compute, f_true(compute), c0=1e12), fit_power_law(compute, g_true(compute), c0=1e12)
    assert crossings(f, g, 1e10, 1e18) == [pytest.approx(exact, rel=0.02)]


# ------------------------------------------------------------------ sizes in the config

def sized(tmp_path: Path, sizes: list, variants: dict | None = None, **fields) -> Path:
    path = tmp_path / "exp.yaml"
    data = {"name": "s", "defaults": PRESETS, "seeds": [0], "sizes": sizes,
            "variants": variants or {"llama": {}, "gpt": {"model": {"norm": "layernorm", "positions": "learned"}}}}
    path.write_text(yaml.safe_dump({**data, **fields}, sort_keys=False))
    return path


def test_every_variant_at_every_size(tmp_path):
    preset = tmp_path / "wide.yaml"
    preset.write_text("model: {dim: 256, n_heads: 8}\ntrain: {lr: 1.0e-3}\n")
    exp = load_experiment(sized(tmp_path, [{"dim": 64, "n_layers": 2, "n_heads": 2}, {"name": "mid", "dim": 96, "n_heads": 3},
                                           "wide.yaml"], baseline="gpt"))
    assert list(exp.variants) == ["llama@d64-l2-h2", "llama@mid", "llama@wide", "gpt@d64-l2-h2", "gpt@mid", "gpt@wide"]
    assert exp.sizes == ["d64-l2-h2", "mid", "wide"] and exp.archs == ["llama", "gpt"] and exp.baseline == "gpt"
    v = exp.variants["gpt@mid"]
    assert (v.arch, v.size, v.model["dim"], v.model["n_heads"], v.model["n_layers"]) == ("gpt", "mid", 96, 3, 4)
    assert v.model["positions"] == "learned"  # the variant's architecture survives the size
    wide = exp.variants["llama@wide"]
    assert (wide.model["dim"], wide.train.lr) == (256, 1e-3)  # a preset size may set other sections too
    assert exp.variants["llama@mid"].origins["model.dim"][1] == "sizes[1].dim"
    assert exp.select(["gpt"]) == ["gpt@d64-l2-h2", "gpt@mid", "gpt@wide"]
    assert exp.select(["llama@mid", "gpt@wide"]) == ["llama@mid", "gpt@wide"]


def test_sized_experiment_round_trips_through_its_resolved_file(tmp_path):
    exp = load_experiment(sized(tmp_path, [{"dim": 32, "n_heads": 2}, {"dim": 64, "n_heads": 2}], budget={"tokens_per_param": 20}))
    resolved = tmp_path / "run" / "experiment.yaml"
    resolved.parent.mkdir()
    resolved.write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    again = load_experiment(resolved)
    assert again.to_dict() == exp.to_dict() and again.sizes == exp.sizes
    assert [(v.arch, v.size) for v in again.variants.values()] == [(v.arch, v.size) for v in exp.variants.values()]


# ------------------------------------------------------------------ the report

def scaling_run_dir(root: Path, laws: dict, sizes: int = 5) -> Path:
    """A results.json of a sweep whose final losses follow known laws exactly."""
    variants = {}
    for arch, (E, A, alpha, shift) in laws.items():
        for i, c in enumerate(np.geomspace(1e12, 1e15, sizes) * shift):
            variants[f"{arch}@s{i}"] = {
                "arch": arch, "size": f"s{i}", "params": 10_000 * (i + 1), "flops_per_token": c / 12800,
                "config": {"model": {"dim": 32 * (i + 1), "n_layers": 2, "n_heads": 2}, "train": {"steps": 100, "batch_size": 4, "seq_len": 32}},
                "runs": [{"seed": 0, "status": "completed", "final_val_loss": float(law(E, A, alpha)(c)), "train_flops": float(c),
                          "steps": 100, "train_tokens": 12800}]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"experiment": "scaling", "baseline": "llama", "seeds": [0],
                                                   "budget": {"tokens_per_param": 20},
                                                   "sizes": [f"s{i}" for i in range(sizes)], "variants": variants}))
    return root


def test_report_states_fit_winner_and_crossing(tmp_path):
    # Same alpha, so the laws cross at exactly 1e12 * (0.2 / 0.5)^(-1/0.4) ~ 9.9e12 FLOPs, inside the data.
    run_dir = scaling_run_dir(tmp_path, {"llama": (2.0, 1.5, 0.4, 1.0), "gpt2": (2.2, 1.0, 0.4, 1.0)})
    md = write_report(run_dir).read_text()
    section = md[md.index("## Scaling"):md.index("## Length") if "## Length" in md else None]
    fits = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith(("| llama |", "| gpt2 |"))
            and "±" in line}
    assert "| 5 | 2 ± " in fits["llama"] and "| 0.4 ± " in fits["llama"]
    assert "the fits rank: llama" in section and "llama wins by" in section
    assert "llama and gpt2 cross** at 9.88T FLOPs (within the data)" in section
    assert (run_dir / "plots" / "scaling_loss_vs_flops.png").read_bytes()[:4] == b"\x89PNG"
    # Per-size deltas: each variant against the baseline of its own size.
    assert "| gpt2@s4 | 1/1 completed |" in md and "| llama@s4 (baseline) |" in md
    # Verdicts across scale: Δ = 0.2 - 0.5 (C/1e12)^-0.4 goes from -0.0506 at 5.62T to +0.0744 at 31.6T; linear in
    # log C between them it is 0 at 11.3T, near the fits' 9.88T (one seed: no verdict, Δ not estimable).
    scale = md[md.index("## Verdicts across scale"):]
    assert "| gpt2 | s0 | 1T | undecided | -0.3000 (not estimable at n = 1) | — |" in scale
    assert "**gpt2: Δ = 0 at 11.3T FLOPs (interpolated)** — Δ changes sign between s1 (-0.0506) and s2 (+0.0744)." in scale


def test_report_labels_a_crossing_past_the_data_as_extrapolation_and_further_out_as_not_estimable(tmp_path):
    # The laws cross at x = 0.5^(-1/0.3) ~ 10, i.e. 1.0e13 FLOPs, whatever the shift of the measured compute.
    f, g = law(1.5, 2.0, 0.3), law(2.0, 1.0, 0.3)
    exact = 1e12 * 0.5 ** (-1 / 0.3)
    assert float(f(exact)) == pytest.approx(float(g(exact)))
    # The data stop at 5e12 (shift 5e-3): the crossing is 2.0x past them, within half a decade: given, labelled.
    run_dir = scaling_run_dir(tmp_path / "near", {"llama": (1.5, 2.0, 0.3, 5e-3), "gpt2": (2.0, 1.0, 0.3, 5e-3)})
    md = write_report(run_dir).read_text()
    assert f"cross** at {exact / 1e12:.3g}T FLOPs (extrapolation: 2.02× beyond the compute both measured)" in md
    assert "the fits rank: gpt2" in md
    # The data stop at 1e12 (shift 1e-3): 10x past them, beyond half a decade: no digits, not estimable.
    run_dir = scaling_run_dir(tmp_path / "far", {"llama": (1.5, 2.0, 0.3, 1e-3), "gpt2": (2.0, 1.0, 0.3, 1e-3)})
    md = write_report(run_dir).read_text()
    assert "cross** beyond the data (not estimable): more than 3.2× past the compute both measured." in md
    assert f"{exact / 1e12:.3g}T" not in md and "the fits rank: gpt2" in md


# ------------------------------------------------------------------ end to end



@pytest.mark.e2e
def test_sizes_run_end_to_end(tmp_path, cache):
    sizes = "sizes:\n  - {name: s16, dim: 16}\n  - {name: s32, dim: 32}\n  - {name: s48, dim: 48}\nbudget: {tokens_per_param: 0.05}"
    exp = write_experiment(tmp_path, cache, steps=None, seeds=[0], extra=sizes, baseline="rms")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--variant", "rms"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["sizes"] == ["s16", "s32", "s48"] and results["budget"] == {"tokens_per_param": 0.05}
    done = {name: e for name, e in results["variants"].items() if e["runs"]}
    assert list(done) == ["rms@s16", "rms@s32", "rms@s48"]  # --variant rms: all its sizes, not ln's
    for name, entry in done.items():
        assert (entry["arch"], entry["size"]) == ("rms", name.split("@")[1])
        assert entry["config"]["model"]["dim"] == int(name[-2:])
        assert entry["runs"][0]["steps"] == round(0.05 * entry["params"] / (8 * 32))
    assert (out / "rms@s32" / "seed0" / "metrics.json").exists()
    md = (out / "report.md").read_text()
    assert "## Scaling" in md and "| rms | s48 | 48 × 1 × 2 |" in md
