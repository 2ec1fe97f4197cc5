"""GQA as an ablation axis: K/V projection parameters and KV-cache size per token from the config,
checked against the real model, and the report's attention table when KV heads differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from components import TransformerConfig, TransformerLM
from workbench.reports import write_report
from workbench.reports.attention import attention_memory

BASE = {"dim": 64, "n_layers": 3, "n_heads": 8}


def build(**model) -> TransformerLM:
    return TransformerLM(TransformerConfig(vocab_size=101, max_seq_len=16, **model), init_seed=0)


@pytest.mark.parametrize("kv_heads", [8, 4, 2, 1])
@pytest.mark.parametrize("bias", [False, True])
def test_kv_projection_params_match_the_model(kv_heads, bias):
    """Fewer K/V heads remove exactly the predicted weights: compare parameter counts with MHA."""
    mha, gqa = build(**BASE, bias=bias), build(**BASE, n_kv_heads=kv_heads, bias=bias)
    a = attention_memory({**BASE, "n_kv_heads": None, "bias": bias})
    b = attention_memory({**BASE, "n_kv_heads": kv_heads, "bias": bias})
    assert a["kv_proj_params"] - b["kv_proj_params"] == mha.num_params() - gqa.num_params()
    assert a["kv_proj_params"] == 3 * 2 * 64 * (64 + bias)  # MHA: K and V are dim x dim each


@pytest.mark.parametrize("kv_heads", [8, 2, 1])
def test_kv_cache_values_match_the_keys_and_values_the_kernel_sees(kv_heads):
    model = build(**BASE, n_kv_heads=kv_heads)
    seen = []
    for block in model.blocks:  # the kernel gets (q, k, v): k and v are what a cache would hold
        block.attn.kernel.register_forward_pre_hook(lambda _, args: seen.append(args[1].numel() + args[2].numel()))
    T = 5
    with torch.no_grad():
        model(torch.zeros(1, T, dtype=torch.long))
    per_token = sum(seen) // T
    assert per_token == attention_memory({**BASE, "n_kv_heads": kv_heads})["kv_cache_values_per_token"]


def _results(root: Path, kv: dict[str, int | None]) -> Path:
    variants = {name: {"config": {"model": {**BASE, "n_kv_heads": k}}, "params": 100_000,
                       "runs": [{"seed": 0, "status": "completed", "final_val_loss": 3.0}]} for name, k in kv.items()}
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"baseline": "mha", "seeds": [0], "variants": variants}))
    return root


def test_report_shows_kv_memory_when_kv_heads_differ(tmp_path):
    md = write_report(_results(tmp_path / "a", {"mha": None, "gqa": 2, "mqa": 1})).read_text()
    section = md[md.index("## Attention: key/value heads"):].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| m") or line.startswith("| g")}
    assert "| 8 / 8 (MHA) | 8 |" in rows["mha"] and "| 8 / 2 (GQA) |" in rows["gqa"] and "| 8 / 1 (MQA) |" in rows["mqa"]
    assert "| 768 B |" in rows["mha"] and "| 96 B |" in rows["mqa"]  # 3 layers x 2 (K, V) x 8 heads x 8 dims x 2 bytes
    assert "24.6K (24.6%)" in rows["mha"]
    same = write_report(_results(tmp_path / "b", {"mha": None, "other": None})).read_text()
    assert "## Attention" not in same
