"""Norm placements: each wiring against its formula, in isolation, in a Block and in the model; the
depth-scaled ones (LayerScale, ReZero, DeepNorm) against their papers' constants."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from components import (Block, DeepNorm, LayerNorm, LayerScale, ParallelBlock, PostNorm, PreNorm, ReorderedNorm,
                        ReZero, RMSNorm, SandwichNorm, TransformerConfig, TransformerLM, registry)
from components.contract import ContractWarning
from components.placement_scaled import cait_init, deepnorm_alpha, deepnorm_beta


class Stub(nn.Module):
    """The k-th norm a placement builds: h + 10^(k+1), each call logged under the attribute it sits at."""

    def __init__(self, k: int, calls: list):
        super().__init__()
        self.k, self.calls, self.name = k, calls, None

    def forward(self, h):
        self.calls.append((self.name, h.item()))
        return h + 10.0 ** (self.k + 1)


def recorded(cls, **kwargs):
    """(placement built with Stub norms, attn(h) = h^2, ffn(h) = 3h, the call log): none commute."""
    calls, made = [], []

    def make_norm(dim=None):
        made.append(Stub(len(made), calls))
        return made[-1]

    place = cls(make_norm=make_norm, **kwargs)
    for name, module in place.named_children():
        module.name = name

    def log(name, f):
        def run(h):
            calls.append((name, h.item()))
            return f(h)

        return run

    return place, log("attn", lambda h: h**2), log("ffn", lambda h: 3 * h), calls


def test_pre_normalises_each_sublayer_input_only():
    place, attn, ffn, calls = recorded(PreNorm)
    h = 1 + (1 + 10) ** 2  # x + attn(attn_norm(x))
    assert place(torch.tensor(1.0), attn, ffn).item() == h + 3 * (h + 100)  # h + ffn(ffn_norm(h))
    assert calls == [("attn_norm", 1.0), ("attn", 11.0), ("ffn_norm", 122.0), ("ffn", 222.0)]


def test_post_normalises_each_residual_sum():
    place, attn, ffn, calls = recorded(PostNorm)
    h = (1 + 1**2) + 10  # attn_norm(x + attn(x))
    assert place(torch.tensor(1.0), attn, ffn).item() == (h + 3 * h) + 100  # ffn_norm(h + ffn(h))
    assert calls == [("attn", 1.0), ("attn_norm", 2.0), ("ffn", 12.0), ("ffn_norm", 48.0)]


def test_parallel_feeds_one_shared_norm_to_both_sublayers():
    place, attn, ffn, calls = recorded(ParallelBlock)
    assert place(torch.tensor(1.0), attn, ffn).item() == 1 + 11**2 + 3 * 11  # x + attn(n(x)) + ffn(n(x))
    assert ("attn", 11.0) in calls and ("ffn", 11.0) in calls


def test_reordered_normalises_each_sublayer_output():
    place, attn, ffn, calls = recorded(ReorderedNorm)
    h = 2 + (2**2 + 10)  # x + attn_norm(attn(x))
    assert place(torch.tensor(2.0), attn, ffn).item() == h + (3 * h + 100)  # h + ffn_norm(ffn(h))
    assert calls == [("attn", 2.0), ("attn_norm", 4.0), ("ffn", 16.0), ("ffn_norm", 48.0)]


def test_sandwich_norms_both_sides_of_each_sublayer():
    place, attn, ffn, calls = recorded(SandwichNorm)
    h = 1 + ((1 + 10) ** 2 + 100)  # x + attn_post_norm(attn(attn_norm(x)))
    assert place(torch.tensor(1.0), attn, ffn).item() == h + (3 * (h + 1000) + 10000)
    assert [c[0] for c in calls] == ["attn_norm", "attn", "attn_post_norm", "ffn_norm", "ffn", "ffn_post_norm"]


def test_layerscale_scales_each_prenorm_branch_by_its_own_gain():
    place, attn, ffn, calls = recorded(LayerScale, dim=1, n_layers=4)
    with torch.no_grad():
        place.attn_scale.fill_(0.5)
        place.ffn_scale.fill_(0.25)
    h = 1 + 0.5 * (1 + 10) ** 2  # x + g_a * attn(attn_norm(x))
    assert place(torch.tensor([1.0]), attn, ffn).item() == h + 0.25 * 3 * (h + 100)
    assert [c[0] for c in calls] == ["attn_norm", "attn", "ffn_norm", "ffn"]


def test_rezero_scales_both_branches_by_one_scalar_and_has_no_norm():
    _, attn, ffn, calls = recorded(PreNorm)
    place = ReZero()
    assert list(place.children()) == [] and [n for n, _ in place.named_parameters()] == ["alpha"]
    with torch.no_grad():
        place.alpha.fill_(0.5)
    h = 2 + 0.5 * 2**2  # x + a * attn(x)
    assert place(torch.tensor(2.0), attn, ffn).item() == h + 0.5 * 3 * h
    assert calls == [("attn", 2.0), ("ffn", 4.0)]


def test_deepnorm_upweights_the_stream_before_each_post_norm():
    place, attn, ffn, calls = recorded(DeepNorm, n_layers=8)
    a = 16**0.25  # (2N)^(1/4), N = 8
    h = a * 1 + 1**2 + 10  # attn_norm(a x + attn(x))
    torch.testing.assert_close(place(torch.tensor(1.0), attn, ffn), torch.tensor(a * h + 3 * h + 100))
    assert [c[0] for c in calls] == ["attn", "attn_norm", "ffn", "ffn_norm"]


def test_the_papers_constants():
    # CaiT: eps 0.1 up to depth 18, 1e-5 at 24, 1e-6 deeper. DeepNet, decoder-only: (2N)^(1/4), (8N)^(-1/4).
    assert [cait_init(n) for n in (1, 12, 18, 19, 24, 25, 48)] == [0.1, 0.1, 0.1, 1e-5, 1e-5, 1e-6, 1e-6]
    assert deepnorm_alpha(8) == pytest.approx(2.0) and deepnorm_beta(2) == pytest.approx(0.5)
    assert deepnorm_alpha(32) == pytest.approx(64**0.25) and deepnorm_beta(32) == pytest.approx(256**-0.25)


ALL = {
    "pre": (PreNorm, True, ("attn_norm", "ffn_norm")),
    "post": (PostNorm, False, ("attn_norm", "ffn_norm")),
    "parallel": (ParallelBlock, True, ("attn_norm",)),
    "reordered": (ReorderedNorm, True, ("attn_norm", "ffn_norm")),
    "sandwich": (SandwichNorm, True, ("attn_norm", "attn_post_norm", "ffn_norm", "ffn_post_norm")),
    "layerscale": (LayerScale, True, ("attn_norm", "ffn_norm")),
    "rezero": (ReZero, False, ()),
    "deepnorm": (DeepNorm, False, ("attn_norm", "ffn_norm")),
}


@pytest.mark.parametrize("name", ALL)
def test_registry_serves_the_modules_with_their_declared_traits(name):
    entry = registry.get("norm_placement", name)
    cls, final_norm, _ = ALL[name]
    assert entry.factory is cls and entry.traits["final_norm"] is final_norm
    assert entry.traits["residual_init"] is (deepnorm_beta if name == "deepnorm" else None)


def small_config(**overrides):
    base = dict(vocab_size=64, dim=16, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=16, norm="layernorm", bias=True)
    return TransformerConfig(**{**base, **overrides})


def expected_block(name, block, x, attn):
    """The block's formula, written out from its modules (float64)."""
    n, f = block, block.ffn
    if name in ("pre", "layerscale"):
        ga, gf = (block.attn_scale, block.ffn_scale) if name == "layerscale" else (1.0, 1.0)
        h = x + ga * attn(n.attn_norm(x))
        return h + gf * f(n.ffn_norm(h))
    if name in ("post", "deepnorm"):
        a = (2 * 2) ** 0.25 if name == "deepnorm" else 1.0
        h = n.attn_norm(a * x + attn(x))
        return n.ffn_norm(a * h + f(h))
    if name == "parallel":
        return x + attn(n.attn_norm(x)) + f(n.attn_norm(x))
    if name == "reordered":
        h = x + n.attn_norm(attn(x))
        return h + n.ffn_norm(f(h))
    if name == "rezero":
        h = x + block.alpha * attn(x)
        return h + block.alpha * f(h)
    h = x + n.attn_post_norm(attn(n.attn_norm(x)))
    return h + n.ffn_post_norm(f(n.ffn_norm(h)))


@pytest.mark.parametrize("name", sorted(ALL))
def test_block_wires_its_sublayers_by_placement(name):
    torch.manual_seed(0)
    cfg = small_config(norm_placement=name)
    block = Block(cfg, layer_idx=1).double()
    names = ALL[name][2]
    assert [n for n, m in block.place.named_children() if isinstance(m, LayerNorm)] == list(names)
    with torch.no_grad():  # non-trivial norm gains, biases and scales, so a skipped or misplaced one shows
        for p in block.place.parameters():
            p.add_(0.5 * torch.randn_like(p))
    positions = registry.build("positions", "rope", head_dim=cfg.head_dim)
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    expected = expected_block(name, block, x, lambda h: block.attn(h, positions))
    torch.testing.assert_close(block(x, positions), expected)


def test_state_dict_keys_are_the_blocks_own_as_before_placements_were_modules():
    # Checkpoints and weight interop address the norms as blocks.N.attn_norm / blocks.N.ffn_norm.
    for placement in ("pre", "post"):
        keys = TransformerLM(small_config(norm_placement=placement)).state_dict().keys()
        assert {"blocks.0.attn_norm.weight", "blocks.0.attn_norm.bias", "blocks.1.ffn_norm.weight"} <= set(keys)
    keys = TransformerLM(small_config(norm_placement="sandwich")).state_dict().keys()
    assert {"blocks.1.attn_post_norm.weight", "blocks.1.ffn_post_norm.bias"} <= set(keys)
    assert not any(k.startswith("blocks.0.ffn_norm") for k in TransformerLM(small_config(norm_placement="parallel")).state_dict())
    assert {"blocks.1.attn_scale", "blocks.1.ffn_scale"} <= set(TransformerLM(small_config(norm_placement="layerscale")).state_dict())
    assert "blocks.0.alpha" in TransformerLM(small_config(norm_placement="rezero")).state_dict()
    model = TransformerLM(small_config())
    assert model.blocks[0].attn_norm is model.blocks[0].place.attn_norm  # read as stored, too


def test_a_state_dict_with_the_old_keys_loads_in_order(tmp_path):
    model = TransformerLM(small_config(), init_seed=0)
    state = model.state_dict()
    assert list(state)[:6] == ["embed.weight", "blocks.0.attn_norm.weight", "blocks.0.attn_norm.bias",
                               "blocks.0.ffn_norm.weight", "blocks.0.ffn_norm.bias", "blocks.0.attn.qkv.weight"]
    torch.save(state, tmp_path / "old.pt")
    fresh = TransformerLM(small_config(), init_seed=1)
    fresh.load_state_dict(torch.load(tmp_path / "old.pt"), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), state.values()))


@pytest.mark.parametrize("norm, cls", [("layernorm", LayerNorm), ("rmsnorm", RMSNorm)])
@pytest.mark.parametrize("placement", ["pre", "parallel", "reordered", "sandwich", "layerscale"])
def test_placements_declaring_a_final_norm_get_one(norm, cls, placement):
    model = TransformerLM(small_config(norm=norm, norm_placement=placement))
    assert isinstance(model.norm, cls)


@pytest.mark.parametrize("placement", ["post", "deepnorm", "rezero"])
def test_placements_ending_without_a_norm_need_none_before_the_head(placement):
    # Post-norm blocks already end in a norm (ReZero has none at all); a norm before the head would change the model.
    model = TransformerLM(small_config(norm_placement=placement))
    assert isinstance(model.norm, nn.Identity)
    x = torch.randint(0, 64, (2, 7))
    h = model.embed(x)
    for block in model.blocks:
        h = block(h, model.positions)
    torch.testing.assert_close(model(x), model.lm_head(h))


def test_layerscale_starts_at_caits_eps_for_the_depth_and_takes_an_option():
    deep = TransformerLM(small_config(norm_placement="layerscale", n_layers=20), init_seed=0)
    assert all((b.attn_scale == 1e-5).all() and (b.ffn_scale == 1e-5).all() for b in deep.blocks)
    cfg = small_config(norm_placement={"name": "layerscale", "init_value": 0.5})
    model = TransformerLM(cfg, init_seed=0)
    with torch.no_grad():
        model.blocks[0].attn_scale.zero_()
    model.init_weights(0)  # reset_parameters restores the declared init
    assert (model.blocks[0].attn_scale == 0.5).all()


def test_rezero_blocks_start_as_the_identity():
    model = TransformerLM(small_config(norm_placement="rezero"), init_seed=0)
    tokens = torch.randint(0, 64, (2, 7))
    torch.testing.assert_close(model(tokens), model.lm_head(model.embed(tokens)))
    model(tokens[:, :-1], targets=tokens[:, 1:]).backward()
    # At alpha = 0 only the alphas (and embedding, head) learn in the first step.
    assert all(b.alpha.grad.abs() > 0 for b in model.blocks)
    assert all(p.grad is None or not p.grad.any() for n, p in model.named_parameters() if ".attn." in n or ".ffn." in n)


@pytest.mark.parametrize("init", ["gpt2", "fan_in", "olmo2"])
def test_deepnorm_declares_betas_init_for_the_residual_projections(init):
    cfg = small_config(norm_placement="deepnorm", n_layers=4, init=init)
    model = TransformerLM(cfg)
    stds, beta = model.init_stds(), (8 * 4) ** -0.25
    base = {"gpt2": 0.02, "olmo2": 0.02}.get(init)
    for layer in (model.blocks[2].attn.out, model.blocks[2].ffn.down):
        name = next(n for n, m in model.named_modules() if m is layer) + ".weight"
        assert stds[name] == pytest.approx((base or 1 / math.sqrt(layer.in_features)) * beta)
    assert stds["blocks.2.attn.qkv.weight"] == pytest.approx(base or 1 / math.sqrt(16))  # q, k, v: unscaled
    pre = TransformerLM(small_config(n_layers=4, init=init)).init_stds()
    assert pre["blocks.2.attn.out.weight"] == pytest.approx({"gpt2": 0.02 / math.sqrt(8), "olmo2": 0.02}.get(init, 1 / 4))


def test_third_party_placement_gets_a_final_norm_by_default_and_a_warning(sandbox_registry):
    with pytest.warns(ContractWarning, match="norm_placement 'wbtest_twice' does not declare final_norm"):

        @registry.register("norm_placement", "wbtest_twice")
        class Twice(PreNorm):
            """The pre-norm block applied twice with the same norms."""

            def forward(self, x, attn, ffn):
                return super().forward(super().forward(x, attn, ffn), attn, ffn)

    assert registry.get("norm_placement", "wbtest_twice").traits["final_norm"] is True
    model = TransformerLM(small_config(norm_placement="wbtest_twice", norm="rmsnorm"))
    assert isinstance(model.norm, RMSNorm)


def test_a_placement_takes_options_from_its_spec(sandbox_registry):
    @registry.register("norm_placement", "wbtest_scaled", final_norm=True)
    class Scaled(PreNorm):
        """Pre-norm with residual branches scaled by alpha."""

        def __init__(self, make_norm, alpha: float = 1.0):
            super().__init__(make_norm)
            self.alpha = alpha

        def forward(self, x, attn, ffn):
            x = x + self.alpha * attn(self.attn_norm(x))
            return x + self.alpha * ffn(self.ffn_norm(x))

    torch.manual_seed(0)
    base = TransformerLM(small_config(norm_placement="pre"), init_seed=0)
    zero = TransformerLM(small_config(norm_placement={"name": "wbtest_scaled", "alpha": 0.0}), init_seed=0)
    tokens = torch.randint(0, 64, (1, 5))
    # alpha = 0: the blocks are the identity, so the logits are the head of the final-normed embeddings.
    torch.testing.assert_close(zero(tokens), zero.lm_head(zero.norm(zero.embed(tokens))))
    assert not torch.allclose(base(tokens), zero(tokens))


def test_a_placement_may_not_take_a_name_the_block_uses(sandbox_registry):
    @registry.register("norm_placement", "wbtest_greedy", final_norm=True)
    class Greedy(PreNorm):
        """Holds a module named like the block's FFN."""

        def __init__(self, make_norm):
            super().__init__(make_norm)
            self.ffn = nn.Identity()

    with pytest.raises(ValueError, match="norm_placement 'wbtest_greedy' holds 'ffn', a name the block uses itself"):
        TransformerLM(small_config(norm_placement="wbtest_greedy"))


def test_each_placement_is_built_with_its_layer_index(sandbox_registry):
    seen = []

    @registry.register("norm_placement", "wbtest_indexed", final_norm=True)
    class Indexed(PreNorm):
        """Records the layer it is built for."""

        def __init__(self, make_norm, layer_idx: int, n_layers: int, dim: int):
            super().__init__(make_norm)
            seen.append((layer_idx, n_layers, dim))

    TransformerLM(small_config(norm_placement="wbtest_indexed", n_layers=3))
    assert seen == [(0, 3, 16), (1, 3, 16), (2, 3, 16)]
