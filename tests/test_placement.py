"""Norm placements: each wiring against its formula, in isolation, in a Block and in the model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from components import Block, LayerNorm, RMSNorm, TransformerConfig, TransformerLM, registry
from components.contract import ContractWarning
from components.placement import parallel, post, pre, reordered, sandwich


def recording_stubs(norm_names):
    """attn(h) = h^2, ffn(h) = 3h, and norm `n` (the k-th declared) h + 10^k: none commute, each call logged."""
    calls = []

    def log(name, f):
        def run(h):
            calls.append((name, h.item()))
            return f(h)

        return run

    norms = SimpleNamespace(**{n: log(n, lambda h, k=k: h + 10.0 ** (k + 1)) for k, n in enumerate(norm_names)})
    return log("attn", lambda h: h**2), log("ffn", lambda h: 3 * h), norms, calls


def test_pre_normalises_each_sublayer_input_only():
    attn, ffn, norms, calls = recording_stubs(["attn_norm", "ffn_norm"])
    h = 1 + (1 + 10) ** 2  # x + attn(attn_norm(x))
    assert pre(torch.tensor(1.0), attn, ffn, norms).item() == h + 3 * (h + 100)  # h + ffn(ffn_norm(h))
    assert calls == [("attn_norm", 1.0), ("attn", 11.0), ("ffn_norm", 122.0), ("ffn", 222.0)]


def test_post_normalises_each_residual_sum():
    attn, ffn, norms, calls = recording_stubs(["attn_norm", "ffn_norm"])
    h = (1 + 1**2) + 10  # attn_norm(x + attn(x))
    assert post(torch.tensor(1.0), attn, ffn, norms).item() == (h + 3 * h) + 100  # ffn_norm(h + ffn(h))
    assert calls == [("attn", 1.0), ("attn_norm", 2.0), ("ffn", 12.0), ("ffn_norm", 48.0)]


def test_parallel_feeds_one_shared_norm_to_both_sublayers():
    attn, ffn, norms, calls = recording_stubs(["attn_norm"])
    assert parallel(torch.tensor(1.0), attn, ffn, norms).item() == 1 + 11**2 + 3 * 11  # x + attn(n(x)) + ffn(n(x))
    assert ("attn", 11.0) in calls and ("ffn", 11.0) in calls


def test_reordered_normalises_each_sublayer_output():
    attn, ffn, norms, calls = recording_stubs(["attn_norm", "ffn_norm"])
    h = 2 + (2**2 + 10)  # x + attn_norm(attn(x))
    assert reordered(torch.tensor(2.0), attn, ffn, norms).item() == h + (3 * h + 100)  # h + ffn_norm(ffn(h))
    assert calls == [("attn", 2.0), ("attn_norm", 4.0), ("ffn", 16.0), ("ffn_norm", 48.0)]


def test_sandwich_norms_both_sides_of_each_sublayer():
    attn, ffn, norms, calls = recording_stubs(["attn_norm", "attn_post_norm", "ffn_norm", "ffn_post_norm"])
    h = 1 + ((1 + 10) ** 2 + 100)  # x + attn_post_norm(attn(attn_norm(x)))
    assert sandwich(torch.tensor(1.0), attn, ffn, norms).item() == h + (3 * (h + 1000) + 10000)
    assert [c[0] for c in calls] == ["attn_norm", "attn", "attn_post_norm", "ffn_norm", "ffn", "ffn_post_norm"]


DECLARED = {
    "pre": (True, ("attn_norm", "ffn_norm")),
    "post": (False, ("attn_norm", "ffn_norm")),
    "parallel": (True, ("attn_norm",)),
    "reordered": (True, ("attn_norm", "ffn_norm")),
    "sandwich": (True, ("attn_norm", "attn_post_norm", "ffn_norm", "ffn_post_norm")),
}


@pytest.mark.parametrize("name", DECLARED)
def test_registry_serves_the_functions_with_their_declared_traits(name):
    entry = registry.get("norm_placement", name)
    assert entry.factory is {"pre": pre, "post": post, "parallel": parallel, "reordered": reordered, "sandwich": sandwich}[name]
    assert (entry.traits["final_norm"], entry.traits["norms"]) == DECLARED[name]


def small_config(**overrides):
    base = dict(vocab_size=64, dim=16, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=16, norm="layernorm", bias=True)
    return TransformerConfig(**{**base, **overrides})


@pytest.mark.parametrize("placement", sorted(DECLARED))
def test_block_wires_its_sublayers_by_placement(placement):
    torch.manual_seed(0)
    cfg = small_config(norm_placement=placement)
    block = Block(cfg).double()
    names = DECLARED[placement][1]
    assert [n for n, m in block.named_children() if isinstance(m, LayerNorm)] == list(names)
    with torch.no_grad():  # non-trivial norm gains and biases, so a skipped or misplaced norm shows
        for n in names:
            getattr(block, n).weight.normal_(1.0, 0.5)
            getattr(block, n).bias.normal_(0.0, 0.5)
    positions = registry.build("positions", "rope", head_dim=cfg.head_dim)
    x = torch.randn(2, 7, 16, dtype=torch.float64)

    def attn(h):
        return block.attn(h, positions)

    n = SimpleNamespace(**{k: getattr(block, k) for k in names})
    if placement == "pre":
        h = x + attn(n.attn_norm(x))
        expected = h + block.ffn(n.ffn_norm(h))
    elif placement == "post":
        h = n.attn_norm(x + attn(x))
        expected = n.ffn_norm(h + block.ffn(h))
    elif placement == "parallel":
        expected = x + attn(n.attn_norm(x)) + block.ffn(n.attn_norm(x))
    elif placement == "reordered":
        h = x + n.attn_norm(attn(x))
        expected = h + n.ffn_norm(block.ffn(h))
    else:
        h = x + n.attn_post_norm(attn(n.attn_norm(x)))
        expected = h + n.ffn_post_norm(block.ffn(n.ffn_norm(h)))
    torch.testing.assert_close(block(x, positions), expected)


def test_pre_and_post_keep_their_state_dict_keys():
    # Checkpoints and weight interop address the norms as blocks.N.attn_norm / blocks.N.ffn_norm.
    for placement in ("pre", "post"):
        keys = TransformerLM(small_config(norm_placement=placement)).state_dict().keys()
        assert {"blocks.0.attn_norm.weight", "blocks.0.attn_norm.bias", "blocks.1.ffn_norm.weight"} <= set(keys)
    keys = TransformerLM(small_config(norm_placement="sandwich")).state_dict().keys()
    assert {"blocks.1.attn_post_norm.weight", "blocks.1.ffn_post_norm.bias"} <= set(keys)
    assert not any(k.startswith("blocks.0.ffn_norm") for k in TransformerLM(small_config(norm_placement="parallel")).state_dict())


@pytest.mark.parametrize("norm, cls", [("layernorm", LayerNorm), ("rmsnorm", RMSNorm)])
@pytest.mark.parametrize("placement", ["pre", "parallel", "reordered", "sandwich"])
def test_placements_declaring_a_final_norm_get_one(norm, cls, placement):
    model = TransformerLM(small_config(norm=norm, norm_placement=placement))
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


def test_third_party_placement_gets_a_final_norm_by_default_and_a_warning(sandbox_registry):
    with pytest.warns(ContractWarning, match="norm_placement 'wbtest_twice' does not declare final_norm"):

        @registry.register("norm_placement", "wbtest_twice")
        def twice(x, attn, ffn, norms):
            """The pre-norm block applied with the same norms twice."""
            return pre(pre(x, attn, ffn, norms), attn, ffn, norms)

    entry = registry.get("norm_placement", "wbtest_twice")
    assert entry.traits["final_norm"] is True and entry.traits["norms"] == ("attn_norm", "ffn_norm")
    model = TransformerLM(small_config(norm_placement="wbtest_twice", norm="rmsnorm"))
    assert isinstance(model.norm, RMSNorm)


def test_a_placement_takes_options_from_its_spec(sandbox_registry):
    @registry.register("norm_placement", "wbtest_scaled", final_norm=True, norms=("attn_norm", "ffn_norm"))
    def scaled(x, attn, ffn, norms, alpha: float = 1.0):
        """Pre-norm with residual branches scaled by alpha."""
        x = x + alpha * attn(norms.attn_norm(x))
        return x + alpha * ffn(norms.ffn_norm(x))

    torch.manual_seed(0)
    base = TransformerLM(small_config(norm_placement="pre"), init_seed=0)
    zero = TransformerLM(small_config(norm_placement={"name": "wbtest_scaled", "alpha": 0.0}), init_seed=0)
    tokens = torch.randint(0, 64, (1, 5))
    # alpha = 0: the blocks are the identity, so the logits are the head of the final-normed embeddings.
    torch.testing.assert_close(zero(tokens), zero.lm_head(zero.norm(zero.embed(tokens))))
    assert not torch.allclose(base(tokens), zero(tokens))
