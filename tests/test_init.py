"""Weight init schemes (TransformerConfig.init): the default is unchanged, the literature options
draw what they promise, and the init-time scales docs/init.md reports.

``python tests/test_init.py`` prints the tables of docs/init.md (about 20 s on 2 CPU cores).
"""

from __future__ import annotations

import math
import re
import zlib

import pytest
import torch
from torch import nn

from components import InvalidConfig, LearnedPositions, TransformerConfig, TransformerLM, registry
from components.config import INIT_SCHEMES

GLUS = ("swiglu", "geglu", "reglu")
MLPS = ("relu", "gelu")


def tiny(**overrides) -> TransformerConfig:
    base = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=16)
    return TransformerConfig(**{**base, **overrides})


def preset(**overrides) -> TransformerConfig:
    """The shipped ablations' model: configs/model/llama.yaml at configs/size/tiny.yaml, the stdlib
    vocabulary and train.seq_len 128."""
    base = dict(vocab_size=2048, max_seq_len=128, dim=128, n_layers=4, n_heads=4, norm_eps=1e-6)
    return TransformerConfig(**{**base, **overrides})


# --- the default is today's GPT-2 init, bit for bit ---------------------------------------------


def old_gpt2_init(model: TransformerLM, seed: int | None) -> dict[str, torch.Tensor]:
    """What init_weights drew before ``init`` existed (commit 8ea22d8), re-implemented: N(0, init_std)
    for every nn.Linear/nn.Embedding weight and a learned table, /sqrt(2 * n_layers) for residual
    projections, one generator per parameter seeded by crc32(f"{seed}:{name}"); zero biases, unit gains."""
    cfg = model.config
    std, residual_std = cfg.init_std, cfg.init_std / math.sqrt(2 * cfg.n_layers)
    stds = {}
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            # The residual projections of the built-ins, by name: attention out and the FFN's down.
            residual = re.fullmatch(r"blocks\.\d+\.(attn\.out|ffn\.down)", mod_name)
            stds[prefix + "weight"] = residual_std if residual else std
        elif isinstance(module, LearnedPositions):
            stds[prefix + "weight"] = std
    expected = {}
    for name, p in model.named_parameters():
        generator = None if seed is None else torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
        if name in stds:
            expected[name] = torch.empty(p.shape).normal_(0.0, stds[name], generator=generator)
        elif name.endswith("bias"):
            expected[name] = torch.zeros(p.shape)
        else:
            expected[name] = torch.ones(p.shape)
    return expected


DEFAULT_CONFIGS = {
    "llama": dict(n_kv_heads=2),
    "gpt2": dict(norm="layernorm", ffn="gelu", positions="learned", bias=True, tie_embeddings=True),
    "vaswani": dict(norm="layernorm", norm_placement="post", ffn="relu", positions="sinusoidal", bias=True),
    "reglu_deep": dict(ffn="reglu", n_layers=5, init_std=0.05),
}


@pytest.mark.parametrize("name", DEFAULT_CONFIGS)
def test_default_init_is_unchanged(name):
    cfg = tiny(**DEFAULT_CONFIGS[name])
    assert cfg.init == "gpt2"
    for seed in (0, 7):
        model = TransformerLM(cfg, init_seed=seed)
        expected = old_gpt2_init(model, seed)
        actual = dict(model.named_parameters())
        assert actual.keys() == expected.keys()
        for n in expected:
            torch.testing.assert_close(actual[n], expected[n], atol=0, rtol=0, msg=n)


# Saved from the code before ``init`` existed (commit 8ea22d8), tiny() at init_seed=0:
# (first three values, sum of squares) per parameter.
SAVED_GPT2 = {
    "embed.weight": ([0.00114548, 0.00500168, -0.02398436], 0.81567764),
    "blocks.0.attn.qkv.weight": ([-0.00702681, -0.01914156, -0.03246572], 1.19634647),
    "blocks.1.ffn.down.weight": ([-0.00508283, 0.00218822, -0.00676367], 0.26689872),
    "lm_head.weight": ([-0.03778272, 0.00098501, 0.00839636], 0.81880401),
}


def test_default_init_matches_values_saved_from_the_old_code():
    params = dict(TransformerLM(tiny(), init_seed=0).named_parameters())
    for name, (first, sum_sq) in SAVED_GPT2.items():
        assert params[name].flatten()[:3].tolist() == pytest.approx(first, abs=1e-8), name
        assert params[name].double().pow(2).sum().item() == pytest.approx(sum_sq, rel=1e-6), name


def test_default_init_without_a_seed_draws_the_global_stream_as_before():
    cfg = tiny()
    torch.manual_seed(123)
    model = TransformerLM(cfg)
    torch.manual_seed(123)
    # The constructor's own layer inits consume the global stream identically in both; a seeded
    # init_weights leaves it untouched, so the old code's unseeded draws continue from the same point.
    expected = old_gpt2_init(TransformerLM(cfg, init_seed=0), None)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, expected[n], atol=0, rtol=0, msg=n)


def test_explicit_gpt2_equals_the_default():
    a = TransformerLM(tiny(), init_seed=4).state_dict()
    b = TransformerLM(tiny(init="gpt2"), init_seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_declared_residual_projection_is_depth_scaled_whatever_its_name(sandbox_registry):
    @registry.register("ffn", "wbtest_named", width="mlp", residual=("to_*",))
    class Named(nn.Module):
        """An MLP with other layer names: in_proj, to_stream."""

        def __init__(self, dim: int, hidden_dim: int):
            super().__init__()
            self.in_proj, self.to_stream = nn.Linear(dim, hidden_dim, bias=False), nn.Linear(hidden_dim, dim, bias=False)

        def forward(self, x):
            return self.to_stream(torch.relu(self.in_proj(x)))

    model = TransformerLM(tiny(ffn="wbtest_named", **BIG), init_seed=0)
    residual_std = 0.02 / math.sqrt(2 * 3)
    assert model.blocks[2].ffn.to_stream.weight.std().item() == pytest.approx(residual_std, rel=0.03)
    assert model.blocks[2].ffn.in_proj.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert model.blocks[2].attn.out.weight.std().item() == pytest.approx(residual_std, rel=0.03)


def test_moe_experts_down_projections_are_residual():
    model = TransformerLM(tiny(ffn="moe"), init_seed=0)
    stds = model.init_stds()
    residual_std = 0.02 / math.sqrt(2 * 2)
    assert stds["blocks.1.ffn.experts.7.down.weight"] == residual_std
    assert stds["blocks.1.ffn.experts.7.up.weight"] == stds["blocks.1.ffn.router.weight"] == 0.02


# --- the literature options ----------------------------------------------------------------------

BIG = dict(vocab_size=4096, dim=256, n_layers=3, n_heads=4)  # matrices of >= 65k entries


@pytest.mark.parametrize("ffn", ["swiglu", "relu"])
def test_fan_in_draws_hidden_layers_at_one_over_sqrt_fan_in(ffn):
    model = TransformerLM(tiny(init="fan_in", ffn=ffn, bias=True, norm="layernorm", **BIG), init_seed=0)
    hidden = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and m is not model.lm_head]
    assert {n.rsplit(".", 1)[-1] for n, _ in hidden} >= {"qkv", "out", "up", "down"}
    for name, module in hidden:
        assert module.weight.std().item() == pytest.approx(1 / math.sqrt(module.in_features), rel=0.03), name
        assert module.weight.mean().abs().item() < 0.1 / math.sqrt(module.in_features), name
        assert (module.bias == 0).all(), name
    # The tables and the LM head keep init_std, so the logits start small.
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert model.lm_head.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert all((p == 1).all() for n, p in model.named_parameters() if "norm" in n and n.endswith("weight"))


def test_fan_in_keeps_a_learned_position_table_and_a_tied_head_at_init_std():
    model = TransformerLM(tiny(init="fan_in", positions="learned", tie_embeddings=True, **BIG), init_seed=1)
    assert model.lm_head.weight is model.embed.weight
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert model.positions.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_fan_in_starts_near_uniform_predictions():
    cfg = preset(init="fan_in")
    model = TransformerLM(cfg, init_seed=0)
    tokens = torch.randint(0, cfg.vocab_size, (2, 65), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = model(tokens[:, :-1], targets=tokens[:, 1:]).item()
    assert loss == pytest.approx(math.log(cfg.vocab_size), rel=0.02)


def test_olmo2_is_truncated_normal_at_init_std_without_depth_scaling():
    model = TransformerLM(tiny(init="olmo2", **BIG), init_seed=0)
    truncated_std = 0.02 * math.sqrt(1 - 6 * math.exp(-4.5) / math.sqrt(2 * math.pi) / math.erf(3 / math.sqrt(2)))
    for name, p in model.named_parameters():
        if p.ndim == 2:
            assert p.abs().max().item() <= 3 * 0.02 + 1e-7, name
            assert p.std().item() == pytest.approx(truncated_std, rel=0.03), name
    residual = model.blocks[0].ffn.down.weight
    assert residual.std().item() == pytest.approx(truncated_std, rel=0.03)  # no 1/sqrt(2 * n_layers)


def test_unknown_init_names_the_field_and_the_choices():
    with pytest.raises(InvalidConfig) as info:
        tiny(init="t5")
    assert info.value.field == "init" and info.value.value == "t5"
    assert str(info.value).startswith("init='t5': unknown init scheme")
    assert "available: gpt2, fan_in, olmo2" in str(info.value)
    with pytest.raises(InvalidConfig, match="did you mean 'fan_in'"):
        tiny(init="fanin")


def test_init_round_trips_through_the_dict():
    cfg = tiny(init="olmo2")
    assert cfg.to_dict()["init"] == "olmo2" and TransformerConfig.from_dict(cfg.to_dict()) == cfg
    assert TransformerConfig.from_dict({k: v for k, v in tiny().to_dict().items() if k != "init"}).init == "gpt2"


@pytest.mark.parametrize("init", ["fan_in", "olmo2"])
def test_seeded_init_shares_values_across_variants(init):
    a = dict(TransformerLM(tiny(init=init, ffn="swiglu"), init_seed=3).named_parameters())
    b = dict(TransformerLM(tiny(init=init, ffn="gelu", positions="learned"), init_seed=3).named_parameters())
    shared = [n for n in a if n in b and a[n].shape == b[n].shape]
    assert {"blocks.1.attn.qkv.weight", "blocks.0.attn.out.weight", "embed.weight", "lm_head.weight"} <= set(shared)
    for n in shared:
        torch.testing.assert_close(a[n], b[n], atol=0, rtol=0, msg=n)
    assert not torch.equal(a["blocks.0.attn.qkv.weight"], a["blocks.1.attn.qkv.weight"])
    relu = TransformerLM(tiny(init=init, ffn="relu"), init_seed=1).state_dict()
    gelu = TransformerLM(tiny(init=init, ffn="gelu"), init_seed=1).state_dict()
    assert all(torch.equal(relu[k], gelu[k]) for k in relu)


def test_init_on_the_meta_device_builds_for_every_scheme():
    for init in INIT_SCHEMES:
        with torch.device("meta"):
            model = TransformerLM(tiny(init=init))
        assert model.embed.weight.is_meta


# --- init-time scales (docs/init.md) ------------------------------------------------------------


def rms(x: torch.Tensor) -> float:
    return x.float().pow(2).mean().sqrt().item()


@torch.no_grad()
def measure(cfg: TransformerConfig, seeds=(0, 1, 2, 3), batch: int = 8) -> dict[str, float]:
    """RMS at init, averaged over init seeds, on random tokens (B=batch, T=max_seq_len): token
    embeddings, the position table, and per block the attention output, the FFN hidden activation
    (the input of ``down``: act(up x) or act(gate x) * up x), the FFN output and the residual stream
    after the block. Keys: embed, positions, attn.i, hidden.i, ffn.i, stream.i, and their means over
    blocks (attn, hidden, ffn), plus the initial loss."""
    tokens = torch.randint(0, cfg.vocab_size, (batch, cfg.max_seq_len + 1), generator=torch.Generator().manual_seed(0))
    totals: dict[str, float] = {}
    for seed in seeds:
        model = TransformerLM(cfg, init_seed=seed).eval()
        out: dict[str, float] = {}
        hooks = [model.embed.register_forward_hook(lambda m, a, y: out.__setitem__("embed", rms(y)))]
        for i, block in enumerate(model.blocks):
            hooks += [
                block.attn.register_forward_hook(lambda m, a, y, i=i: out.__setitem__(f"attn.{i}", rms(y))),
                block.ffn.down.register_forward_pre_hook(lambda m, a, i=i: out.__setitem__(f"hidden.{i}", rms(a[0]))),
                block.ffn.register_forward_hook(lambda m, a, y, i=i: out.__setitem__(f"ffn.{i}", rms(y))),
                block.register_forward_hook(lambda m, a, y, i=i: out.__setitem__(f"stream.{i}", rms(y))),
            ]
        out["loss"] = model(tokens[:, :-1], targets=tokens[:, 1:]).item()
        for h in hooks:
            h.remove()
        zeros = torch.zeros(1, cfg.max_seq_len, cfg.dim)
        out["positions"] = rms(model.positions.embed(zeros)) if cfg.positions in ("learned", "sinusoidal") else float("nan")
        for key in ("attn", "hidden", "ffn"):
            out[key] = sum(out[f"{key}.{i}"] for i in range(cfg.n_layers)) / cfg.n_layers
        for k, v in out.items():
            totals[k] = totals.get(k, 0.0) + v / len(seeds)
    return totals


def test_glu_product_starts_smaller_than_an_mlp_hidden_under_gpt2_only():
    """The finding docs/init.md reports: at N(0, 0.02) a GLU's product is ~6x smaller than a ReLU MLP's
    hidden activation (it is quadratic in the weight scale); at 1/sqrt(fan_in) the two are within ~20%."""
    ratio = {}
    for init in ("gpt2", "fan_in"):
        swiglu, relu = measure(preset(init=init, ffn="swiglu"), seeds=(0,), batch=2), measure(preset(init=init, ffn="relu"), seeds=(0,), batch=2)
        ratio[init] = swiglu["hidden"] / relu["hidden"]
    assert ratio["gpt2"] < 0.25
    assert 0.7 < ratio["fan_in"] < 1.2


def report() -> None:  # pragma: no cover - prints the tables of docs/init.md
    torch.set_num_threads(2)
    ffns = MLPS + GLUS
    for init in INIT_SCHEMES:
        print(f"\n## init={init}: FFNs inside LLaMA (pre-RMSNorm, RoPE), mean over the 4 blocks")
        print("| ffn | hidden width | hidden RMS | / relu | FFN out RMS | / relu | attn out RMS | stream after block 4 | initial loss |")
        print("|---|---|---|---|---|---|---|---|---|")
        rows = {f: measure(preset(init=init, ffn=f)) for f in ffns}
        for f in ffns:
            r, base = rows[f], rows["relu"]
            print(f"| {f} | {preset(ffn=f).ffn_hidden_dim} | {r['hidden']:.4f} | {r['hidden'] / base['hidden']:.2f} | {r['ffn']:.4f} "
                  f"| {r['ffn'] / base['ffn']:.2f} | {r['attn']:.4f} | {r['stream.3']:.4f} | {r['loss']:.3f} |")
        print(f"\n## init={init}: residual stream after each block, pre vs post norm (norm gains 1)")
        print("| placement | ffn | embed | block 1 | block 2 | block 3 | block 4 | sublayer out / stream in, block 1 attn | block 4 ffn |")
        print("|---|---|---|---|---|---|---|---|---|")
        for place in ("pre", "post"):
            for f in ("swiglu", "relu"):
                r = measure(preset(init=init, ffn=f, norm_placement=place))
                first = r["attn.0"] / r["embed"]
                last = r["ffn.3"] / r["stream.2"]
                print(f"| {place} | {f} | {r['embed']:.4f} | " + " | ".join(f"{r[f'stream.{i}']:.4f}" for i in range(4))
                      + f" | {first:.3f} | {last:.3f} |")
        print(f"\n## init={init}: token embeddings vs position tables (RMS per entry)")
        print("| positions | embed RMS | position table RMS | table / embed |")
        print("|---|---|---|---|")
        for pos in ("learned", "sinusoidal"):
            r = measure(preset(init=init, positions=pos))
            print(f"| {pos} | {r['embed']:.4f} | {r['positions']:.4f} | {r['positions'] / r['embed']:.2f} |")


if __name__ == "__main__":  # pragma: no cover
    report()
