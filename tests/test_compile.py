"""torch.compile of the model (what train.compile does): the compiled loss and gradients equal the
eager ones in fp32 and under bf16 autocast, with no graph break, and the compiled graph is one
that inductor's on-disk caches can store, so every run after the first compiles from the cache.

The fast paths (RMSNorm's and RoPE's hand-written backwards) are plain formulas under compile,
and the fused LM-head loss is a ``torch.library`` custom op; an ``autograd.Function`` in the graph
would make AOTAutograd bypass its cache on every run.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

from components import TransformerConfig, TransformerLM
from components.attention import SDPAttention


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_step_equals_eager_and_is_cacheable(precision, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # nothing of this test reaches the user's cache
    torch._dynamo.reset()
    counters.clear()
    cfg = TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=2, n_heads=2)
    eager = TransformerLM(cfg, init_seed=0)
    for module in eager.modules():
        if isinstance(module, SDPAttention):
            # As on a CPU with native bf16 (and any GPU): where bf16 is emulated, SDPA upcasts to fp32 inside
            # an autocast-disabled region, which AOTAutograd's cache does not store (a cost only such CPUs pay).
            module.native_cpu_bf16 = True
    compiled = copy.deepcopy(eager)
    compiled.compile()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 64, (2, 16), generator=g), torch.randint(0, 64, (2, 16), generator=g)
    results = []
    for model in (eager, compiled):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(x, targets=y)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    tol = {"atol": 1e-5, "rtol": 1e-4} if precision == "fp32" else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(results[1][0], results[0][0], **tol)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, **tol, msg=name)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["aot_autograd"]["autograd_cache_bypass"] == 0
    assert counters["aot_autograd"]["autograd_cache_saved"] >= 1
    torch._dynamo.reset()
