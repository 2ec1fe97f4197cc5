"""The bench's reasons and fairness rules: where a step's time goes (torch.profiler, by category),
the reason attached to a missed target, the compile-cost measurement's cache isolation, and the
precision probe that skips a reduced precision a CPU cannot compute in vector units."""

from __future__ import annotations

import os

import pytest
import torch

from workbench.bench import gemm, profile
from workbench.bench.compile_cost import CACHE_ENV, fresh_cache
from workbench.bench.machine import kind
from workbench.bench.runner import check_targets


def test_profiler_events_fall_in_their_categories():
    assert profile.category("aten::mm") == "matmul"
    assert profile.category("aten::addmm_") == "matmul"
    assert profile.category("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention"
    assert profile.category("## Call CompiledFxGraph fabc123 ##") == "compiled kernels"
    assert profile.category("aten::_fused_adamw_") == "optimizer"
    assert profile.category("aten::add_") == "other"


def test_compare_finds_the_step_that_does_extra_work():
    a, b, big = torch.randn(32, 32), torch.randn(32, 32), torch.randn(512, 512)

    def lean():
        a @ b

    def heavy():
        a @ b
        for _ in range(50):
            torch.exp(big)  # ~10 ms of extra work against a matmul of microseconds

    result = profile.compare(heavy, lean)
    assert result["categories"]["matmul"]["workbench_ms"] > 0 and result["categories"]["matmul"]["reference_ms"] > 0
    assert result["categories"]["other"]["workbench_ms"] > result["categories"]["other"]["reference_ms"]
    assert result["most_extra"][0]["op"] == "aten::exp"
    assert "aten::exp +" in profile.summary(result)


def _row(speedup_vs_compiled):
    return {"precision": "fp32", "mode": "compile", "reference": "transformers_sdpa", "speedup": 1.2,
            "speedup_vs": {"transformers_sdpa_compiled": speedup_vs_compiled},
            "profile": {"categories": {"matmul": {"workbench_ms": 600.0, "reference_ms": 610.0},
                                       "compiled kernels": {"workbench_ms": 120.0, "reference_ms": 90.0}},
                        "total_ms": {"workbench": 720.0, "reference": 700.0},
                        "most_extra": [{"op": "compiled kernels", "extra_ms": 30.0}]}}


def test_a_missed_step_target_carries_its_profiled_reason_and_a_met_one_none():
    missed = {t["name"]: t for t in check_targets({"step": {"shape": {"dim": 64}, "rows": [_row(1.02)]}})}
    why = missed["compile fp32 speedup vs transformers_sdpa_compiled"]["why"]
    assert "compiled kernels 120 vs 90 ms" in why and "compiled kernels +30.0 ms" in why
    met = {t["name"]: t for t in check_targets({"step": {"shape": {"dim": 64}, "rows": [_row(1.2)]}})}
    assert "why" not in met["compile fp32 speedup vs transformers_sdpa_compiled"]


def test_fresh_cache_is_empty_and_gives_back_the_users_cache(monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "/users/own/cache")
    with fresh_cache() as directory:
        assert os.environ[CACHE_ENV] == directory and os.listdir(directory) == []
    assert os.environ[CACHE_ENV] == "/users/own/cache" and not os.path.exists(directory)
    monkeypatch.delenv(CACHE_ENV)
    with fresh_cache():
        pass
    assert CACHE_ENV not in os.environ


def test_a_precision_many_times_slower_than_fp32_is_skipped_with_the_measured_rates(monkeypatch):
    real = gemm.square_gemm

    def slow_bf16(device, dtype, n):
        call = real(device, dtype, n)
        if dtype != "bf16":
            return call
        return lambda: [call() for _ in range(40)]  # 40x the work: as slow as bf16 without vector units

    monkeypatch.setattr(gemm, "square_gemm", slow_bf16)
    why = gemm.unusable_precisions(torch.device("cpu"), ["fp32", "bf16"], n=64)
    assert set(why) == {"bf16"} and "GFLOP/s" in why["bf16"] and "fp32" in why["bf16"]
    monkeypatch.setattr(gemm, "square_gemm", real)
    assert gemm.unusable_precisions(torch.device("cpu"), ["fp32"]) == {}


@pytest.mark.parametrize("flags, fast, expected", [
    (["avx2"], False, "AMD EPYC, AVX2, no native bf16"),
    (["avx2", "avx512f", "avx512_bf16"], True, "AMD EPYC, AVX-512, native bf16"),
])
def test_machine_kind_names_the_cpu_and_its_bf16(flags, fast, expected):
    assert kind({"gpu": None, "cpu": "AMD EPYC", "cpu_flags": flags, "cpu_fast_bf16": fast}) == expected
