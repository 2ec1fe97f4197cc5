"""Norm placement: pre = x + f(norm(x)), post = norm(x + f(x)), in isolation, in a Block and in the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components import Block, LayerNorm, RMSNorm, TransformerConfig, TransformerLM, post, pre, registry


def recording_stubs():
    """f(h) = h^2 and norm(h) = h + 10, which do not commute, logging what each one sees."""
    calls = []

    def f(h):
        calls.append(("f", h.item()))
        return h**2

    def norm(h):
        calls.append(("norm", h.item()))
        return h + 10

    return f, norm, calls


def test_pre_normalises_the_sublayer_input_only():
    f, norm, calls = recording_stubs()
    assert pre(torch.tensor(1.0), f, norm).item() == 1 + (1 + 10) ** 2  # x + f(norm(x))
    assert calls == [("norm", 1.0), ("f", 11.0)]


def test_post_normalises_the_residual_sum():
    f, norm, calls = recording_stubs()
    assert post(torch.tensor(1.0), f, norm).item() == (1 + 1**2) + 10  # norm(x + f(x))
    assert calls == [("f", 1.0), ("norm", 2.0)]


def test_registry_serves_the_same_functions():
    assert registry.get("norm_placement", "pre").factory is pre
    assert registry.get("norm_placement", "post").factory is post


def small_config(**overrides):
    base = dict(vocab_size=64, dim=16, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=16, norm="layernorm", bias=True)
    return TransformerConfig(**{**base, **overrides})


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_block_wires_its_sublayers_by_placement(placement):
    torch.manual_seed(0)
    cfg = small_config(norm_placement=placement)
    block = Block(cfg).double()
    with torch.no_grad():  # non-trivial norm gains and biases, so a skipped or misplaced norm shows
        for norm in (block.attn_norm, block.ffn_norm):
            norm.weight.normal_(1.0, 0.5)
            norm.bias.normal_(0.0, 0.5)
    positions = registry.build("positions", "rope", head_dim=cfg.head_size)
    x = torch.randn(2, 7, 16, dtype=torch.float64)

    def attn(h):
        return block.attn(h, positions)

    if placement == "pre":
        h = x + attn(block.attn_norm(x))
        expected = h + block.ffn(block.ffn_norm(h))
    else:
        h = block.attn_norm(x + attn(x))
        expected = block.ffn_norm(h + block.ffn(h))
    torch.testing.assert_close(block(x, positions), expected)


@pytest.mark.parametrize("norm, cls", [("layernorm", LayerNorm), ("rmsnorm", RMSNorm)])
def test_pre_model_has_a_final_norm(norm, cls):
    model = TransformerLM(small_config(norm=norm, norm_placement="pre"))
    assert isinstance(model.norm, cls)


def test_post_model_has_no_final_norm():
    # Post-norm blocks already end in a norm; a second one before the head would change the model.
    model = TransformerLM(small_config(norm_placement="post"))
    assert isinstance(model.norm, nn.Identity)
    x = torch.randint(0, 64, (2, 7))
    h = model.embed(x)
    for block in model.blocks:
        h = block(h, model.positions)
    torch.testing.assert_close(model(x), model.lm_head(h))


def test_third_party_placement_gets_a_final_norm_by_default(sandbox_registry):
    @registry.register("norm_placement", "wbtest_sandwich")
    def sandwich(x, sublayer, norm):
        """Sandwich: norm on both sides of the sublayer."""
        return x + norm(sublayer(norm(x)))

    model = TransformerLM(small_config(norm_placement="wbtest_sandwich", norm="rmsnorm"))
    assert isinstance(model.norm, RMSNorm)
