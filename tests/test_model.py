"""TransformerConfig validation and TransformerLM: counts, FLOPs, init, training, causality."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from components import InvalidConfig, TransformerConfig, TransformerLM, registry
from conftest import entry_params

GLUS = {"swiglu", "geglu", "reglu"}


def tiny(**overrides) -> TransformerConfig:
    base = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=16)
    return TransformerConfig(**{**base, **overrides})


# --- config validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, field, says",
    [
        (dict(dim=100, n_heads=3), "dim", "divisible by n_heads=3"),
        (dict(n_heads=8, n_kv_heads=3), "n_kv_heads", "must divide n_heads=8"),
        (dict(n_heads=4, n_kv_heads=8), "n_kv_heads", "must divide n_heads=4"),
        (dict(norm="rmsnrom"), "norm", "did you mean 'rmsnorm'?"),
        (dict(ffn="swigl"), "ffn", "did you mean 'swiglu'?"),
        (dict(positions="rop"), "positions", "did you mean 'rope'?"),
        (dict(attention="sdp"), "attention", "did you mean 'sdpa'?"),
        (dict(norm_placement="pos"), "norm_placement", "available: "),
        (dict(dim=-32), "dim", "positive integer"),
        (dict(n_layers=0), "n_layers", "positive integer"),
        (dict(vocab_size=-1), "vocab_size", "positive integer"),
        (dict(max_seq_len=0), "max_seq_len", "positive integer"),
        (dict(n_kv_heads=-2), "n_kv_heads", "positive integer"),
        (dict(ffn_hidden_dim=-5), "ffn_hidden_dim", "positive integer"),
        (dict(n_heads=2.5), "n_heads", "positive integer"),
        (dict(norm_eps=-1e-5), "norm_eps", "positive number"),
        (dict(rope_theta=0.0), "rope_theta", "positive number"),
        (dict(dim=36, n_heads=4), "head_dim", "rope needs an even head_dim"),
        (dict(head_dim=7), "head_dim", "rope needs an even head_dim"),
        (dict(init="t5"), "init", "unknown init scheme (available: gpt2, fan_in, olmo2)"),
        (dict(init="olmo"), "init", "did you mean 'olmo2'?"),
    ],
)
def test_invalid_config_names_the_field(overrides, field, says):
    with pytest.raises(InvalidConfig) as info:
        tiny(**overrides)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}=") and says in str(info.value)


def test_odd_head_dim_is_fine_without_rope():
    assert tiny(dim=36, n_heads=4, positions="learned").head_size == 9


def test_config_round_trips_and_rejects_unknown_fields():
    cfg = tiny(ffn="gelu", n_kv_heads=2)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InvalidConfig, match="n_head=4: unknown field"):
        TransformerConfig.from_dict({"n_head": 4})


# --- parameter count and FLOPs -----------------------------------------------------------------

COUNT_CONFIGS = {
    "llama": dict(n_kv_heads=2),  # rmsnorm, swiglu, rope, no bias, untied
    "gpt2": dict(norm="layernorm", ffn="gelu", positions="learned", bias=True, tie_embeddings=True),
    "vaswani": dict(norm="layernorm", norm_placement="post", ffn="relu", positions="sinusoidal", bias=True),
    "mqa_geglu_tied": dict(n_kv_heads=1, ffn="geglu", tie_embeddings=True, head_dim=16),
}


def manual_count(cfg: TransformerConfig) -> tuple[int, int]:
    """(total, non-embedding) parameters, from the architecture on paper."""
    d, V, H, Hkv, Dh, h, b = cfg.dim, cfg.vocab_size, cfg.n_heads, cfg.kv_heads, cfg.head_size, cfg.hidden_dim, cfg.bias
    attn = d * (H + 2 * Hkv) * Dh + H * Dh * d + b * ((H + 2 * Hkv) * Dh + d)
    ffn = 3 * d * h + b * (2 * h + d) if cfg.ffn in GLUS else 2 * d * h + b * (h + d)
    norm = d + d * (b and cfg.norm == "layernorm")
    layer = attn + ffn + 2 * norm
    table = cfg.max_seq_len * d if cfg.positions == "learned" else 0
    head = 0 if cfg.tie_embeddings else V * d
    final_norm = norm if cfg.norm_placement == "pre" else 0
    total = V * d + table + cfg.n_layers * layer + final_norm + head
    return total, total - V * d - table


@pytest.mark.parametrize("name", COUNT_CONFIGS)
def test_num_params_matches_manual_count(name):
    cfg = tiny(**COUNT_CONFIGS[name])
    model = TransformerLM(cfg)
    total, non_embedding = manual_count(cfg)
    assert model.num_params() == total
    assert model.num_params(non_embedding=True) == non_embedding


FLOP_CONFIGS = {
    "llama_gqa": dict(n_kv_heads=2),
    "gpt2_tied": dict(norm="layernorm", ffn="gelu", positions="learned", bias=True, tie_embeddings=True),
    "mqa_relu_post": dict(n_kv_heads=1, ffn="relu", norm_placement="post", positions="sinusoidal"),
    "wide_vocab": dict(vocab_size=512, ffn="reglu", n_layers=3),
}


@pytest.mark.parametrize("name", FLOP_CONFIGS)
def test_flops_per_token_matches_a_flop_counter(name):
    # Naive attention: its matmuls are visible to FlopCounterMode (the CPU SDPA kernel is not).
    cfg = tiny(attention="naive", max_seq_len=32, **FLOP_CONFIGS[name])
    model = TransformerLM(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, 32))
    with FlopCounterMode(display=False) as counter:
        model(tokens).float().logsumexp(-1).mean().backward()
    measured = counter.get_total_flops() / tokens.numel()
    assert abs(model.flops_per_token(32) / measured - 1) < 0.10


def test_flops_grow_with_sequence_length():
    model = TransformerLM(tiny())
    cfg = model.config
    assert model.flops_per_token(64) - model.flops_per_token(32) == 12 * cfg.n_layers * 32 * cfg.n_heads * cfg.head_size


# --- initialisation ----------------------------------------------------------------------------


def test_init_scales_residual_projections_by_depth():
    cfg = TransformerConfig(vocab_size=256, dim=128, n_layers=8, n_heads=4, init_std=0.02, bias=True, norm="layernorm")
    model = TransformerLM(cfg, init_seed=0)
    params = dict(model.named_parameters())
    residual = torch.cat([params[n].flatten() for n in params if n.endswith(("attn.out.weight", "ffn.down.weight"))])
    other = torch.cat([params[n].flatten() for n in params if n.endswith(("qkv.weight", "ffn.up.weight", "gate.weight"))])
    assert residual.std().item() == pytest.approx(0.02 / math.sqrt(2 * 8), rel=0.03)
    assert other.std().item() == pytest.approx(0.02, rel=0.03)
    assert params["embed.weight"].std().item() == pytest.approx(0.02, rel=0.03)
    assert all(p.abs().sum() == 0 for n, p in params.items() if n.endswith("bias"))
    assert all((p == 1).all() for n, p in params.items() if "norm" in n and n.endswith("weight"))


def test_init_seed_shares_values_across_variants():
    a = dict(TransformerLM(tiny(ffn="swiglu"), init_seed=3).named_parameters())
    b = dict(TransformerLM(tiny(ffn="gelu", positions="learned"), init_seed=3).named_parameters())
    shared = [n for n in a if n in b and a[n].shape == b[n].shape]
    assert "blocks.1.attn.qkv.weight" in shared and "embed.weight" in shared
    for n in shared:
        torch.testing.assert_close(a[n], b[n], atol=0, rtol=0, msg=n)
    # ... while different parameters of the same shape get different draws.
    assert not torch.equal(a["blocks.0.attn.qkv.weight"], a["blocks.1.attn.qkv.weight"])
    assert not torch.equal(a["blocks.0.ffn.gate.weight"], a["blocks.0.ffn.up.weight"])


def test_init_seed_makes_activation_ablations_start_identical():
    relu = TransformerLM(tiny(ffn="relu"), init_seed=1).state_dict()
    gelu = TransformerLM(tiny(ffn="gelu"), init_seed=1).state_dict()
    assert relu.keys() == gelu.keys() and all(torch.equal(relu[k], gelu[k]) for k in relu)


def test_different_init_seeds_differ():
    a, b = TransformerLM(tiny(), init_seed=0), TransformerLM(tiny(), init_seed=1)
    assert not torch.equal(a.embed.weight, b.embed.weight)
    assert not torch.equal(a.blocks[0].attn.qkv.weight, b.blocks[0].attn.qkv.weight)


def test_third_party_ffn_builds_and_keeps_its_own_init(sandbox_registry):
    # No `down` projection and a raw parameter: the model must neither crash nor overwrite it with ones.
    @registry.register("ffn", "wbtest_low_rank")
    class LowRank(torch.nn.Module):
        """A rank-8 feed-forward, for the test."""

        def __init__(self, dim, hidden_dim, bias=False):
            super().__init__()
            self.u = torch.nn.Parameter(torch.full((dim, 8), 0.5))
            self.v = torch.nn.Parameter(torch.full((8, dim), 0.25))

        def forward(self, x):
            return torch.relu(x @ self.u) @ self.v

    model = TransformerLM(tiny(ffn="wbtest_low_rank"), init_seed=0)
    assert (model.blocks[0].ffn.u == 0.5).all() and (model.blocks[0].ffn.v == 0.25).all()
    assert model(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 64)


def test_tied_head_shares_the_embedding():
    model = TransformerLM(tiny(tie_embeddings=True))
    assert model.lm_head.weight is model.embed.weight


# --- behaviour ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(norm="layernorm", norm_placement="post", ffn="relu", positions="sinusoidal", bias=True),
        dict(init="fan_in"),
        dict(init="olmo2"),
    ],
    ids=["llama", "vaswani", "llama_fan_in_init", "llama_olmo2_init"],
)
def test_toy_model_fits_a_repeated_batch(overrides):
    torch.manual_seed(0)
    model = TransformerLM(tiny(**overrides), init_seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = torch.randint(0, 64, (4, 17))

    def loss_fn():
        logits = model(batch[:, :-1])  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())

    first = loss_fn().item()
    assert first == pytest.approx(math.log(64), rel=0.05)  # small init: near-uniform predictions
    for _ in range(30):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_fn().item() < 0.5 * first


@pytest.mark.parametrize("attention", entry_params("attention"))
@pytest.mark.parametrize("positions", registry.available("positions"))
def test_logits_never_see_future_tokens(positions, attention):
    torch.manual_seed(0)
    model = TransformerLM(tiny(positions=positions, attention=attention, n_kv_heads=2), init_seed=0)
    tol = {}
    if attention == "flash":
        model, tol = model.to("cuda", torch.bfloat16), dict(atol=1e-2, rtol=1e-2)
    device = model.embed.weight.device
    tokens = torch.randint(0, 64, (2, 12), device=device)
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1 + torch.randint(0, 62, (2, 5), device=device)) % 64
    with torch.no_grad():
        logits, logits_changed = model(tokens), model(changed)
    assert logits.shape == (2, 12, 64)
    torch.testing.assert_close(logits_changed[:, :7], logits[:, :7], **tol)
    assert not torch.allclose(logits_changed[:, 7:], logits[:, 7:])


@pytest.mark.parametrize("positions", registry.available("positions"))
def test_forward_under_inference_mode_does_not_break_training(positions):
    # Lightning's sanity validation runs under inference_mode before the first training step.
    model = TransformerLM(tiny(positions=positions))
    tokens = torch.randint(0, 64, (2, 8))
    with torch.inference_mode():
        model(tokens)
    model(tokens).logsumexp(-1).mean().backward()
    assert model.embed.weight.grad is not None
