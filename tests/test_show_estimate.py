"""``show`` before a run: each tuned variant once, the number of runs, and the CPU-time estimate. Trains nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench import estimate as est
from workbench.cli import main
from workbench.config import load_experiment
from workbench.show import show_lines

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
NORM = str(EXPERIMENTS / "ablate_norm.yaml")  # 2 variants, seeds [0, 1]
SCALING = str(EXPERIMENTS / "scaling_llama_vs_gpt.yaml")  # 2 variants x 6 sizes, a budget


def expected(experiment) -> tuple[int, int, int]:
    """(tuning, verdict, most) counted from the config: cells x grid x tuning seeds, the verdict seeds
    beyond the tuning ones at each cell's optimum, and up to every extension point and the seed max."""
    tune, policy = experiment.tune, experiment.seed_policy
    cells = {v.cell: v for v in experiment.variants.values()}
    grid = len(tune.values if tune.values is not None else tune.multipliers)
    seeds = min(tune.seeds, len(experiment.seeds))
    tuning = len(cells) * grid * seeds
    verdict = len(cells) * max(0, policy["min"] - seeds)
    most = len(cells) * ((grid + 2 * tune.extend) * seeds + max(0, policy["max"] - seeds))
    return tuning, verdict, most


CASES = {
    "default multipliers": (NORM, ["tune={}"]),
    "values": (NORM, ["tune={key: train.lr, values: [1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2]}"]),
    "two tuning seeds, sequential": (NORM, ["tune={multipliers: [0.5, 1, 2], seeds: 2, extend: 1}", "seeds={min: 3, max: 5}"]),
    "tuning seeds cover the verdict": (NORM, ["tune={seeds: 2, extend: 0}"]),
    "sizes": (SCALING, ["tune={values: [1.0e-3, 3.0e-3, 1.0e-2], seeds: 2}", "seeds={min: 2, max: 4}", "budget.steps=10"]),
}


@pytest.mark.parametrize("path, overrides", CASES.values(), ids=list(CASES))
def test_tuned_run_count_is_cells_times_grid_times_tuning_seeds_plus_verdict_seeds(path, overrides):
    experiment = load_experiment(path, overrides + ["train.steps=10"] * (path == NORM))
    estimate = est.estimate(experiment)
    assert (estimate.tuning, estimate.verdict, estimate.most) == expected(experiment)


def test_ablate_norm_tuned_counts_and_runs_line(capsys):
    assert main(["show", NORM, "tune={}", "train.steps=10"]) == 0
    out = capsys.readouterr().out
    assert "runs: 10 tuning + 2 verdict (up to 20 with edge extensions)" in out
    assert "tune: train.lr over x0.25 x0.5 x1 x2 x4 of each variant's own value; tuning seed [0]" in out
    assert "grid 0.00075 0.0015 0.003 0.006 0.012: rmsnorm, layernorm" in out
    assert "estimated CPU time: ~" in out and "an estimate" in out


@pytest.mark.parametrize("full", [False, True])
def test_show_lists_each_tuned_variant_once_at_its_own_value(full):
    lines = show_lines(load_experiment(NORM, ["tune={}", "train.steps=10"]), full=full)
    headers = [line for line in lines if line.startswith("== ")]
    assert [h.split()[1] for h in headers] == ["rmsnorm", "layernorm"]
    assert not any("@lr=" in line for line in lines)
    assert any("lr=0.003," in line for line in lines)  # the baseline in full, at its configured value


def test_tuned_sizes_show_each_cell_once():
    experiment = load_experiment(SCALING, ["tune={}", "budget.steps=10"])
    headers = [line.split()[1] for line in show_lines(experiment) if line.startswith("== ")]
    assert headers == list(dict.fromkeys(v.cell for v in experiment.variants.values())) and len(headers) == 12


def test_untuned_counts_are_run_groups_times_seeds(capsys):
    assert main(["show", NORM, "train.steps=10"]) == 0
    out = capsys.readouterr().out
    assert "runs: 4 (2 run groups x 2 seeds)" in out and "== rmsnorm ==" in out and "== layernorm ==" in out
    assert main(["show", NORM, "train.steps=10", "seeds={min: 2, max: 5}"]) == 0
    assert "runs: 4 (2 run groups x 2 seeds; up to 10 with sequential seeds)" in capsys.readouterr().out


def test_estimate_scales_with_steps():
    short, long = (est.estimate(load_experiment(NORM, [f"train.steps={n}"])) for n in (10, 100))
    overhead = short.runs * est.RUN_OVERHEAD_S
    assert long.runs == short.runs == 4
    assert (long.seconds - overhead) / (short.seconds - overhead) == pytest.approx(10)
    variant = load_experiment(NORM, ["train.steps=10"]).variants["rmsnorm"]
    assert est.training_flops(variant) == 10 * 32 * 128 * variant.meta_model().flops_per_token(128)


def test_tuned_estimate_counts_extension_points_in_the_most_only():
    experiment = load_experiment(NORM, ["tune={extend: 1}", "train.steps=10"])
    estimate, per_run = est.estimate(experiment), est.run_seconds(experiment.variants["rmsnorm@lr=0.003"])
    assert estimate.seconds == pytest.approx(12 * per_run) and estimate.most_seconds == pytest.approx(16 * per_run)


def test_gpu_runs_carry_a_caveat(capsys):
    assert main(["show", NORM, "train.steps=10", "train.accelerator=cuda"]) == 0
    assert "only CPU time is estimated" in capsys.readouterr().out


HEAVY = ("lightning", "matplotlib", "scipy", "tensorboard", "transformers", "torch._dynamo", "workbench.reports")


def test_show_imports_no_training_or_plotting_stack():
    """``show`` needs torch (it counts on the meta device) and nothing heavier: each of HEAVY cost it
    0.5-2 s of start-up (issue 26: 6-10 s)."""
    code = ("import sys; from workbench.cli import main; code = main(['show', sys.argv[1]]); "
            f"print(code, [m for m in {HEAVY!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code, NORM], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 []"


def test_meta_build_skips_init_and_counts_as_a_real_build():
    """``on_meta`` builds without the random init (whose meta kernel imports torch._dynamo), with the
    parameters a real build has."""
    code = ("import sys, torch; from components import TransformerConfig, TransformerLM; "
            "from workbench.config.model_size import on_meta\n"
            "config = TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=2, n_heads=2, tie_embeddings=False)\n"
            "with on_meta(): meta = TransformerLM(config)\n"
            "real = TransformerLM(config)\n"
            "print('torch._dynamo' in sys.modules, all(p.is_meta for p in meta.parameters()), "
            "[(n, p.shape) for n, p in meta.named_parameters()] == [(n, p.shape) for n, p in real.named_parameters()], "
            "real.embed.weight.std().item() > 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "True", "True", "True"], proc.stderr
