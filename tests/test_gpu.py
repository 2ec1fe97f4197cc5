"""GPU code paths: bf16/fp16 mixed-precision training through Lightning, flash attention against
SDPA, the fused LM-head loss on CUDA, multi-GPU DDP, and the bench on CUDA. Every test is marked
``gpu`` and skips cleanly without a CUDA device (or flash-attn, or a second GPU)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from components import TransformerConfig, TransformerLM, registry
from components.loss import linear_cross_entropy
from conftest import requires_cuda, requires_flash
from e2e import cli, write_experiment
from workbench.cli import main

pytestmark = pytest.mark.gpu

requires_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")




def _train(tmp_path, cache, *overrides: str) -> dict:
    exp = write_experiment(tmp_path, cache, seeds=(0,), variants="  rms: {}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "train.accelerator=gpu", *overrides]) == 0
    return json.loads((out / "results.json").read_text())["variants"]["rms"]["runs"][0]


@requires_cuda
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_training_on_gpu(tmp_path, cache, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    run = _train(tmp_path, cache, f"train.precision={precision}")
    assert run["status"] == "completed" and run["precision"] == precision
    assert run["final_val_loss"] < 6.0  # ln(400) = 5.99: it learned something in 12 steps


@requires_flash
def test_flash_training_matches_sdpa_training(tmp_path, cache):
    flash = _train(tmp_path / "flash", cache, "train.precision=bf16-mixed", "model.attention=flash")
    sdpa = _train(tmp_path / "sdpa", cache, "train.precision=bf16-mixed", "model.attention=sdpa")
    assert flash["status"] == sdpa["status"] == "completed"
    assert flash["final_val_loss"] == pytest.approx(sdpa["final_val_loss"], abs=0.05)  # bf16 kernels differ slightly


@requires_flash
@pytest.mark.parametrize("H, Hkv", [(8, 8), (8, 2)])
def test_flash_matches_sdpa_forward_and_backward(H, Hkv):
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(2, H, 256, 64, device="cuda", dtype=torch.bfloat16, generator=g, requires_grad=True)
    k, v = (torch.randn(2, Hkv, 256, 64, device="cuda", dtype=torch.bfloat16, generator=g, requires_grad=True)
            for _ in range(2))
    upstream = torch.randn(2, H, 256, 64, device="cuda", dtype=torch.bfloat16, generator=g)
    results = []
    for name in ("flash", "sdpa"):
        out = registry.build("attention", name)(q, k, v)
        out.backward(upstream)
        results.append((out.detach(), q.grad, k.grad, v.grad))
        q.grad = k.grad = v.grad = None
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)


@requires_cuda
def test_fused_loss_on_cuda_matches_the_unfused_path_under_bf16():
    g = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(4, 300, 64, device="cuda", generator=g, requires_grad=True)
    w = torch.randn(1000, 64, device="cuda", generator=g, requires_grad=True)
    y = torch.randint(0, 1000, (4, 300), device="cuda", generator=g)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = linear_cross_entropy(h, w, y)
    fused.backward()
    got = (fused.detach(), h.grad, w.grad)
    h.grad = w.grad = None
    exact = F.cross_entropy(F.linear(h, w).flatten(0, 1), y.flatten())
    exact.backward()
    for a, b in zip(got, (exact.detach(), h.grad, w.grad)):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=3e-2)


@requires_cuda
def test_model_trains_a_step_in_bf16_true():
    cfg = TransformerConfig(vocab_size=256, max_seq_len=64, dim=64, n_layers=2, n_heads=4)
    model = TransformerLM(cfg, init_seed=0).cuda().to(torch.bfloat16)
    x = torch.randint(0, 256, (4, 64), device="cuda")
    loss = model(x, targets=x)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.dtype == torch.bfloat16 for p in model.parameters())


def _two_gpu_run(tmp_path, cache, strategy: str) -> dict:
    # Lightning's launcher re-runs the command once per GPU: run it as a real process.
    exp = write_experiment(tmp_path, cache, seeds=(0,), variants="  rms: {}")
    out = tmp_path / "out"
    proc = cli("run", str(exp), "--out", str(out), "train.accelerator=gpu", "train.devices=2", f"train.strategy={strategy}",
               "train.precision=bf16-mixed", "train.grad_clip=0.05")  # small enough that every step clips
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return json.loads((out / "results.json").read_text())["variants"]["rms"]["runs"][0]


@requires_cuda
@requires_two_gpus
def test_ddp_and_fsdp_on_two_gpus_train_the_same_model(tmp_path, cache):
    ddp, fsdp = (_two_gpu_run(tmp_path / s, cache, s) for s in ("ddp", "fsdp"))
    for run in (ddp, fsdp):
        assert run["status"] == "completed"
        assert run["train_tokens"] == 2 * 12 * 8 * 32  # two ranks, each its own slice of every step
    # Same data, init and clipping by the global norm: a per-shard norm under FSDP would clip
    # every rank's shard differently and drift from DDP.
    assert fsdp["final_val_loss"] == pytest.approx(ddp["final_val_loss"], abs=0.02)


@requires_cuda
def test_bench_runs_on_cuda(capsys):
    assert main(["bench", "--quick", "--json", "--device", "cuda", "--section", "gemm", "--section", "step",
                 "--section", "attention"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["machine"]["gpu"]
    assert all(r["speedup"] > 0 for r in results["step"]["rows"])
    kernels = {r["kernel"] for r in results["attention"]["rows"]}
    assert {"naive", "sdpa"} <= kernels
