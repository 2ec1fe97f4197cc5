"""The bench's pure helpers (interleaving, medians, paired ratios, FLOP and MFU arithmetic, growth
exponents, the CPU memory tracker, target checks) and one ``bench --quick --json`` smoke run.
Nothing here times anything against a threshold: speed is measured by the bench, not by tests."""

from __future__ import annotations

import json
import math
import platform
import random
import sys

import pytest
import torch

from components import TransformerConfig, TransformerLM
from workbench.bench.attention import growth_exponent
from workbench.bench.format import markdown
from workbench.bench.machine import describe
from workbench.bench.flops import achieved_flops, matmul_flops, matmul_weights, mfu, paired_mfu, train_flops_per_token
from workbench.bench.memory import PeakTensorMemory
from workbench.bench.overhead import overhead_estimate
from workbench.bench.runner import Settings, check_targets
from workbench.bench.timing import (interleaved, median, median_interval, paired_ratio, paired_ratio_interval,
                                    round_robin_order, spread)
from workbench.cli import main


class FakeClock:
    """A clock that each case advances by a scripted amount, so timings are exact."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_round_robin_gives_every_case_every_position():
    names = ["a", "b", "c"]
    orders = [round_robin_order(names, r) for r in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    for position in range(3):
        assert sorted(order[position] for order in orders) == names


def test_interleaved_times_each_call_and_drops_warmup_rounds():
    clock, calls = FakeClock(), []

    def case(name, seconds):
        def run():
            calls.append(name)
            clock.now += seconds
        return run

    times = interleaved({"fast": case("fast", 1.0), "slow": case("slow", 3.0)}, reps=4, warmup=2, clock=clock)
    assert times == {"fast": [1.0] * 4, "slow": [3.0] * 4}
    assert len(calls) == 12  # 2 warm-up rounds + 4 timed, both cases each round
    assert calls[:4] == ["fast", "slow", "slow", "fast"]  # the order rotates round by round


def test_paired_ratio_cancels_a_drift_both_cases_share():
    # The machine slows down 10x over the run; the candidate is always exactly 2x faster.
    slowdown = [1, 2, 5, 10, 3]
    reference = [2.0 * s for s in slowdown]
    candidate = [1.0 * s for s in slowdown]
    assert paired_ratio(reference, candidate) == pytest.approx(2.0)
    assert median(reference) / median(candidate) == pytest.approx(2.0)  # medians agree here...
    candidate[0] = 100.0  # ...and one outlier round does not move the paired median
    assert paired_ratio(reference, candidate) == pytest.approx(2.0)


def test_median_spread_and_errors():
    assert median([3, 1, 2]) == 2 and median([4, 1, 2, 3]) == 2.5
    assert spread([1.0, 1.0, 1.0]) == 0.0
    assert spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4 - 2) / 3)
    with pytest.raises(ValueError):
        median([])
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_median_interval_is_the_order_statistics_binomial_tails_allow():
    # n = 11: P(Binomial(11, 1/2) <= 1) = 12/2048 <= 2.5% < P(<= 2) = 67/2048, so x_(2) and x_(10).
    assert median_interval([5, 1, 9, 3, 11, 7, 2, 10, 4, 8, 6]) == (2, 10)
    assert median_interval(range(1, 7)) == (1, 6)  # n = 6: only the extremes, P(<= 0) = 1/64
    assert median_interval(range(1, 6)) is None  # n = 5: 1/32 > 2.5%, no interval bounds the median
    assert median_interval(range(1, 6), level=0.9) == (1, 5)
    assert paired_ratio_interval([2.0, 4.0, 6.0, 8.0, 10.0, 12.0], [1.0] * 6) == (2.0, 12.0)


def test_median_interval_covers_the_median_at_least_at_its_level():
    # Skewed timings (lognormal, median 1): the interval must hold the true median in >= 95% of runs.
    rng = random.Random(0)
    for n in (7, 11, 25):
        hits = sum(lo <= 1.0 <= hi for lo, hi in (median_interval([rng.lognormvariate(0, 0.5) for _ in range(n)])
                                                  for _ in range(2000)))
        assert hits / 2000 >= 0.95, (n, hits)


CONFIGS = {
    "llama": dict(),
    "gqa": dict(n_kv_heads=2),
    "mqa_head_dim": dict(n_kv_heads=1, head_dim=24),
    "gpt2": dict(norm="layernorm", ffn="gelu_tanh", positions="learned", bias=True, tie_embeddings=True),
    "relu_multiple_of": dict(ffn="relu", multiple_of=64),
    "swiglu_multiple_of": dict(multiple_of=64, ffn_dim_multiplier=1.3),
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seq_len", [16, 100])
def test_flop_accounting_matches_the_model(name, seq_len):
    cfg = TransformerConfig(vocab_size=300, max_seq_len=128, dim=64, n_layers=3, n_heads=4, **CONFIGS[name])
    with torch.device("meta"):
        model = TransformerLM(cfg)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert matmul_weights(cfg) == linear
    assert train_flops_per_token(cfg, seq_len) == model.flops_per_token(seq_len)


def test_flops_of_a_matmul_and_the_llama_bench_model_by_hand():
    assert matmul_flops(2, 3, 4) == 48
    cfg = TransformerConfig(vocab_size=2048, max_seq_len=256, dim=256, n_layers=4, n_heads=4)
    hidden = int(2 * 4 * 256 / 3)  # 682: LLaMA's GLU width, multiple_of 1
    per_layer = 256 * 768 + 256 * 256 + 3 * 256 * hidden
    expected = 6 * (4 * per_layer + 256 * 2048) + 12 * 4 * 256 * 256
    assert train_flops_per_token(cfg, 256) == expected


def test_mfu_arithmetic():
    assert achieved_flops(6e12, 2.0) == 3e12
    assert mfu(6e12, 2.0, peak_flops=4e12) == pytest.approx(0.75)
    for bad in ((1.0, 0.0, 1.0), (1.0, 1.0, 0.0)):
        with pytest.raises(ValueError):
            mfu(*bad)


def test_growth_exponent_recovers_powers():
    seq = [128, 256, 512, 1024]
    assert growth_exponent(seq, [3.0 * t for t in seq]) == pytest.approx(1.0)
    assert growth_exponent(seq, [0.5 * t * t + 0 for t in seq]) == pytest.approx(2.0)
    assert growth_exponent(seq, [7.0] * 4) == pytest.approx(0.0, abs=1e-12)


def test_peak_tensor_memory_counts_live_storages_once():
    with PeakTensorMemory() as m:
        a = torch.ones(1000)  # 4,000 bytes
        view = a[10:]  # a view: no new storage
        b = torch.ones(500, dtype=torch.float64)  # 4,000 bytes
        del a, view, b
        c = torch.ones(250)  # 1,000 bytes, after both are freed
        assert m.current_bytes == 1000
        del c
    assert m.peak_bytes == 8000 and m.current_bytes == 0


def test_peak_tensor_memory_sees_naive_attention_scores():
    from components import registry

    q = k = v = torch.randn(1, 2, 64, 8)
    with PeakTensorMemory() as m:
        registry.build("attention", "naive")(q, k, v)
    assert m.peak_bytes >= 2 * 64 * 64 * 4  # at least one (B, H, T, T) fp32 score matrix


def _row(precision, mode, speedup, mfu_fp32, paired_fp32=None):
    return {"precision": precision, "mode": mode, "reference": "transformers_sdpa", "speedup": speedup,
            "mfu": {"vs_fp32_peak": mfu_fp32},
            "paired_mfu": {"workbench": {"vs_fp32_gemm": mfu_fp32 if paired_fp32 is None else paired_fp32}}}


def test_targets_compare_each_measure_with_the_issue_threshold():
    results = {
        "step": {"shape": {"dim": 256}, "rows": [_row("fp32", "eager", 1.02, 0.6), _row("fp32", "compile", 1.1, 0.7, 0.8),
                                                  _row("bf16", "eager", 0.99, 0.1)]},
        "overhead": {"overhead": 0.031},
        "attention": {"growth": {"naive": {"memory_exponent": 1.9}, "sdpa": {"memory_exponent": 1.6}}},
    }
    met = {t["name"]: t["met"] for t in check_targets(results)}
    assert met == {
        "eager fp32 speedup vs transformers_sdpa (eager, as its users run it)": False,  # 1.02 < 1.05 (issue 17)
        "compile fp32 speedup vs transformers_sdpa (eager, as its users run it)": False,  # 1.10 < 1.15
        "eager bf16 speedup vs transformers_sdpa (eager, as its users run it)": False,
        "MFU eager fp32 at dim 256 (vs the square GEMM of the same rounds)": False,
        "MFU eager fp32 at dim 256 (vs the best square-GEMM call of the run, strict)": False,
        "MFU compile fp32 at dim 256 (vs the square GEMM of the same rounds)": True,
        "MFU compile fp32 at dim 256 (vs the best square-GEMM call of the run, strict)": False,  # 0.7 < 0.75
        "Lightning overhead per step": False,  # 3.1% > 3%
        "attention memory growth exponent, naive": True,
        "attention memory growth exponent, sdpa": False,
    }


def test_compiled_targets_compare_with_transformers_compiled_and_its_compile_time():
    row = {**_row("bf16", "compile", 1.3, 0.1), "speedup_vs": {"transformers_sdpa_compiled": 1.12},
           "compile_s": {"workbench": {"cold": 25.0, "warm": 4.0}, "transformers_sdpa_compiled": {"cold": 20.0, "warm": 5.0}}}
    checks = {t["name"]: t for t in check_targets({"step": {"shape": {"dim": 64}, "rows": [row]}})}
    assert checks["compile bf16 speedup vs transformers_sdpa_compiled"]["met"]  # 1.12 >= 1.10
    slow = checks["compile time bf16 (cold), workbench / transformers_sdpa_compiled"]
    assert slow["value"] == pytest.approx(1.25) and not slow["met"] and slow["lower_is_better"]
    warm = checks["compile time bf16 (warm), workbench / transformers_sdpa_compiled"]
    assert warm["value"] == pytest.approx(0.8) and warm["met"] and "why" not in warm
    # A missed compile-time target says where the seconds went, phase by phase, when they were recorded.
    row["compile_s"]["workbench"]["cold_phases"] = {"Dynamo tracing": 2.0, "C++ kernel builds (waited for)": 9.0}
    row["compile_s"]["transformers_sdpa_compiled"]["cold_phases"] = {"Dynamo tracing": 1.5, "C++ kernel builds (waited for)": 6.0}
    slow = {t["name"]: t for t in check_targets({"step": {"shape": {"dim": 64}, "rows": [row]}})}[slow["name"]]
    assert slow["why"] == "cold compile, workbench vs transformers: Dynamo tracing 2.0 vs 1.5 s, C++ kernel builds (waited for) 9.0 vs 6.0 s"


def test_a_speedup_target_is_decided_only_when_its_interval_lies_on_one_side():
    rows = [{**_row("fp32", "eager", 1.06, 0.8), "speedup_interval": [1.055, 1.07]},  # met, and the rounds show it
            {**_row("bf16", "eager", 1.06, 0.8), "speedup_interval": [1.03, 1.08]},  # met on the median, within noise
            {**_row("bf16", "compile", 1.2, 0.8), "speedup_interval": [1.16, 1.22],
             "speedup_vs": {"transformers_sdpa_compiled": 1.09}, "speedup_vs_interval": {"transformers_sdpa_compiled": [1.05, 1.099]}}]
    checks = {t["name"]: t for t in check_targets({"step": {"shape": {"dim": 64}, "rows": rows}})}
    eager32, eager16 = (checks[f"eager {p} speedup vs transformers_sdpa (eager, as its users run it)"] for p in ("fp32", "bf16"))
    compiled = checks["compile bf16 speedup vs transformers_sdpa_compiled"]
    assert (eager32["met"], eager32["decided"]) == (True, True)
    assert (eager16["met"], eager16["decided"]) == (True, False)
    assert (compiled["met"], compiled["decided"]) == (False, True)  # 1.099 < 1.10: missed, and the rounds show it
    table = markdown({"machine": describe(torch.device("cpu")), "command": "c", "date": "d", "wall_s": 1.0,
                      "targets": list(checks.values())})
    assert "| 1.06 [1.03, 1.08] | >= 1.05 | yes (within noise) |" in table
    assert "| 1.09 [1.05, 1.10] | >= 1.10 | **no** |" in table
    no_interval = check_targets({"step": {"shape": {"dim": 64}, "rows": [_row("fp32", "eager", 1.06, 0.8)]}})[0]
    assert no_interval["interval"] is None and not no_interval["decided"]


def test_the_compiled_target_is_the_faster_compiled_transformers_not_the_faster_eager_ones():
    # bf16: transformers' sdpa is its faster eager path, its eager attention the faster compiled one.
    row = {**_row("bf16", "compile", 1.3, 0.1), "compiled_reference": "transformers_eager_compiled",
           "speedup_vs": {"transformers_sdpa_compiled": 1.25, "transformers_eager_compiled": 1.03},
           "compile_s": {"workbench": {"cold": 25.0, "warm": 4.0}, "transformers_eager_compiled": {"cold": 30.0, "warm": 5.0},
                         "transformers_sdpa_compiled": {"cold": 20.0, "warm": 5.0}}}
    checks = {t["name"]: t for t in check_targets({"step": {"shape": {"dim": 64}, "rows": [row]}})}
    assert not checks["compile bf16 speedup vs transformers_eager_compiled"]["met"]  # 1.03 < 1.10
    assert "compile bf16 speedup vs transformers_sdpa_compiled" not in checks
    assert checks["compile time bf16 (cold), workbench / transformers_eager_compiled"]["met"]  # 25 <= 30


def test_paired_mfu_cancels_a_slowdown_that_hits_step_and_gemm_alike():
    # A GEMM of 1e9 FLOPs at 1e11 FLOP/s takes 10 ms; a step of 6e9 FLOPs at 75% of that takes 80 ms.
    # Round 2 runs at half speed for both: its ratio is unchanged. Round 3 slows the step alone.
    steps, gemms = [0.080, 0.160, 0.100], [0.010, 0.020, 0.010]
    assert paired_mfu(6e9, steps, 1e9, gemms) == pytest.approx(0.75)
    # Against the best GEMM call alone, the slow round would count against the step.
    assert mfu(6e9, sorted(steps)[1], 1e9 / min(gemms)) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        paired_mfu(1.0, [1.0], 1.0, [1.0, 1.0])


def test_mfu_target_only_at_the_issue_size():
    results = {"step": {"shape": {"dim": 64}, "rows": [_row("fp32", "eager", 1.0, 0.1)]}}
    assert not any("MFU" in t["name"] for t in check_targets(results))


def test_overhead_estimate_counts_per_step_and_logging_costs_robustly():
    plain = [0.100] * 20
    lightning = [0.101] * 20  # 1 ms more every step...
    for k in (9, 19):
        lightning[k] = 0.111  # ...and 10 ms more on each logging step (every 10th)
    lightning[3] = 0.500  # one busy moment
    est = overhead_estimate(plain, lightning, logging_steps={9, 19})
    assert est["extra_ms_per_step"] == pytest.approx(1.0)
    assert est["extra_ms_per_logging_step"] == pytest.approx(10.0)
    assert est["overhead"] == pytest.approx((0.001 + 0.010 / 10) / 0.100)


def test_quick_runs_check_no_targets():
    results = {"settings": {"quick": True}, "overhead": {"overhead": 0.5}}
    assert check_targets(results) == []


def test_settings_reject_unknown_sections_and_quick_skips_compile():
    assert Settings.make(quick=True).compile is False
    assert Settings.make().compile is True
    assert Settings.make(quick=True, compile=True).compile is True
    assert Settings.make(sections=["overhead", "gemm"]).sections == ("gemm", "overhead")
    with pytest.raises(ValueError, match="unknown bench section 'gemms'"):
        Settings.make(sections=["gemms"])


@pytest.mark.slow
def test_quick_json_run_reports_every_section(capsys):
    assert main(["bench", "--quick", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert {"command", "machine", "settings", "gemm", "step", "attention", "overhead", "targets"} <= set(results)
    assert results["targets"] == []  # the issue's targets are for the default sizes, not --quick
    assert results["command"] == "python -m workbench bench --quick --json"
    assert results["gemm"]["fp32"]["flops"] > 0
    # Every case was timed in the heap `workbench run` trains in, and the machine line says so.
    kept = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert results["machine"]["freed_memory_kept"] is kept
    assert ("malloc keeps freed memory" in markdown(results)) is kept
    step = results["step"]
    # bf16 is timed unless this CPU has no vector bf16 arithmetic, which is then said, with the measured rates.
    skipped = results.get("skipped_precisions", {})
    assert set(skipped) <= {"bf16"} and all("GFLOP/s" in why for why in skipped.values())
    expected = [("fp32", "eager")] + ([] if "bf16" in skipped else [("bf16", "eager")])
    assert [(r["precision"], r["mode"]) for r in step["rows"]] == expected
    assert all(f"bf16: not benchmarked: {why}" in markdown(results) for why in skipped.values())
    for row in step["rows"]:
        assert set(row["ms"]) == {"workbench", "transformers_eager", "transformers_sdpa"}
        assert row["speedup"] > 0 and 0 < row["mfu"]["vs_fp32_peak"] < 2
        assert 0 < row["paired_mfu"]["workbench"]["vs_fp32_gemm"] < 2
        assert set(row["paired_mfu"]) == set(row["ms"])
    # Identical weights: identical losses before the first step.
    losses = list(step["initial_loss"].values())
    assert max(losses) - min(losses) < 1e-4
    kernels = {r["kernel"] for r in results["attention"]["rows"]}
    assert {"naive", "sdpa"} <= kernels
    assert ("flash" in kernels) != ("flash" in results["attention"]["skipped"])  # measured, or said why not
    assert results["overhead"]["plain_ms"] > 0 and math.isfinite(results["overhead"]["overhead"])
    # The human-readable report renders every section from the same results.
    text = markdown(results)
    for heading in ("## GEMM peak", "## Training step", "## Attention kernels", "## Lightning overhead", "Targets: not"):
        assert heading in text
