"""TransformerConfig validation and TransformerLM: counts, FLOPs, init, training, causality."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from components import MLP, InvalidConfig, TransformerConfig, TransformerLM, registry
from components.contract import AuxLossSource, SparseCompute
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
    assert tiny(dim=36, n_heads=4, positions="learned").head_dim == 9


def test_config_round_trips_and_rejects_unknown_fields():
    cfg = tiny(ffn="gelu", n_kv_heads=2)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InvalidConfig, match="n_head=4: unknown field"):
        TransformerConfig.from_dict({"n_head": 4})


def test_derived_sizes_are_resolved_once_into_their_own_fields():
    # One name per size: the field holds the resolved value; `derived` says which the rule chose.
    cfg = tiny(ffn="swiglu", multiple_of=8)
    assert (cfg.n_kv_heads, cfg.head_dim, cfg.ffn_hidden_dim) == (4, 8, 88)
    assert cfg.derived == {"n_kv_heads", "head_dim", "ffn_hidden_dim"}
    set_by_user = tiny(n_kv_heads=2, head_dim=16, ffn_hidden_dim=40)
    assert (set_by_user.n_kv_heads, set_by_user.head_dim, set_by_user.ffn_hidden_dim) == (2, 16, 40)
    assert set_by_user.derived == frozenset()
    for attr in ("kv_heads", "head_size", "hidden_dim"):  # the old second names are gone
        assert not hasattr(cfg, attr)


def test_to_dict_stores_derived_sizes_as_the_user_wrote_them():
    # A stored config (checkpoints of old run folders hold None there) re-derives its sizes on load.
    cfg = tiny(n_kv_heads=2)
    stored = cfg.to_dict()
    assert (stored["n_kv_heads"], stored["head_dim"], stored["ffn_hidden_dim"]) == (2, None, None)
    again = TransformerConfig.from_dict(stored)
    assert again == cfg and again.derived == cfg.derived
    old = {k: v for k, v in stored.items()}  # as an older workbench wrote it: the same keys, None sizes
    assert TransformerConfig.from_dict(old).head_dim == 8


# --- component specs: a name or {name: ..., option: value} ---------------------------------------


def test_every_component_field_takes_a_name_or_a_mapping_with_options():
    cfg = tiny(norm={"name": "layernorm", "eps": 1e-3, "bias": False}, ffn={"name": "gelu"},
               positions={"name": "rope", "theta": 500000.0}, attention={"name": "naive"}, norm_placement={"name": "pre"})
    # Canonical: a mapping without options is its name.
    assert (cfg.ffn, cfg.attention, cfg.norm_placement) == ("gelu", "naive", "pre")
    assert cfg.norm == {"name": "layernorm", "eps": 1e-3, "bias": False}
    assert cfg.component("norm") == ("layernorm", {"eps": 1e-3, "bias": False})
    model = TransformerLM(cfg)
    norms = [model.norm] + [n for b in model.blocks for n in (b.attn_norm, b.ffn_norm)]
    assert all(n.eps == 1e-3 and n.bias is None for n in norms)
    assert model.positions.theta == 500000.0


def test_a_spec_may_be_any_mapping_and_round_trips_as_a_plain_dict():
    from types import MappingProxyType

    cfg = tiny(norm=MappingProxyType({"name": "rmsnorm", "eps": 1e-5}))  # e.g. OmegaConf's DictConfig
    assert type(cfg.norm) is dict and cfg.norm == {"name": "rmsnorm", "eps": 1e-5}
    data = cfg.to_dict()
    assert data["norm"] == {"name": "rmsnorm", "eps": 1e-5}
    assert TransformerConfig.from_dict(data) == cfg


def test_a_config_saved_with_plain_names_and_without_newer_fields_still_loads():
    saved = {k: v for k, v in tiny(norm="layernorm", ffn="gelu").to_dict().items() if k not in ("window", "qk_norm", "init")}
    cfg = TransformerConfig.from_dict(saved)
    assert (cfg.norm, cfg.ffn) == ("layernorm", "gelu") and cfg.component("norm") == ("layernorm", {})


@pytest.mark.parametrize(
    "field, spec, says",
    [
        ("norm", {"name": "rmsnrom", "eps": 1e-5}, "unknown norm 'rmsnrom' (did you mean 'rmsnorm'?"),
        ("norm", {"name": "rmsnorm", "epsilon": 1e-5}, "norm 'rmsnorm' has no option 'epsilon' (options: eps: float)"),
        ("norm", {"name": "rmsnorm", "eps": "tiny"}, "option eps='tiny' must be float, not str (options: eps: float)"),
        ("norm", {"name": "rmsnorm", "dim": 64}, "'dim' is set by the model, not an option"),
        ("ffn", {"name": "swiglu", "hidden_dim": 10}, "'hidden_dim' is set by the model, not an option (options: bias: bool)"),
        ("ffn", {"name": "moe", "top_k": 2.5}, "option top_k=2.5 must be int, not float"),
        ("attention", {"name": "naive", "dropout": 0.1}, "attention 'naive' has no option 'dropout' (options: none)"),
        ("attention", {"name": "sdpa", "dropout": 0.1}, "attention 'sdpa' has no option 'dropout' (options: path: 'auto' | 'fused' | 'gemm')"),
        ("positions", {"name": "rope", "theta": "big"}, "option theta='big' must be float"),
        ("norm_placement", {"name": "pre", "alpha": 1.0}, "norm_placement 'pre' has no option 'alpha' (options: none)"),
        ("norm", {"eps": 1e-5}, "has no 'name'"),
        ("norm", 3, "must be a name or {name: ..., option: value}, got 3"),
    ],
)
def test_a_bad_spec_names_the_field_and_the_option(field, spec, says):
    with pytest.raises(InvalidConfig) as info:
        tiny(**{field: spec})
    assert info.value.field == field and says in str(info.value)
    assert "\n" not in str(info.value)


def test_norm_eps_is_the_norms_eps_option():
    model = TransformerLM(tiny(norm="layernorm", norm_eps=1e-3))
    assert {n.eps for b in model.blocks for n in (b.attn_norm, b.ffn_norm)} | {model.norm.eps} == {1e-3}


def test_norm_eps_for_a_norm_without_eps_is_an_error_not_a_silent_drop():
    with pytest.raises(InvalidConfig) as info:
        tiny(norm="dyt", norm_eps=1e-5)
    assert info.value.field == "norm_eps" and "norm 'dyt' has no option 'eps'" in str(info.value)
    with pytest.raises(InvalidConfig, match="norm_eps=1e-05: the norm spec sets eps=0.001 too"):
        tiny(norm={"name": "rmsnorm", "eps": 1e-3}, norm_eps=1e-5)


# --- parameter count and FLOPs -----------------------------------------------------------------

COUNT_CONFIGS = {
    "llama": dict(n_kv_heads=2),  # rmsnorm, swiglu, rope, no bias, untied
    "gpt2": dict(norm="layernorm", ffn="gelu", positions="learned", bias=True, tie_embeddings=True),
    "vaswani": dict(norm="layernorm", norm_placement="post", ffn="relu", positions="sinusoidal", bias=True),
    "mqa_geglu_tied": dict(n_kv_heads=1, ffn="geglu", tie_embeddings=True, head_dim=16),
}


def manual_count(cfg: TransformerConfig) -> tuple[int, int]:
    """(total, non-embedding) parameters, from the architecture on paper."""
    d, V, H, Hkv, Dh, h, b = cfg.dim, cfg.vocab_size, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn_hidden_dim, cfg.bias
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
    assert model.flops_per_token(64) - model.flops_per_token(32) == 12 * cfg.n_layers * 32 * cfg.n_heads * cfg.head_dim


def test_sliding_window_flops_count_at_most_window_keys_per_query():
    full, windowed = TransformerLM(tiny()), TransformerLM(tiny(window=8))
    cfg = full.config
    assert windowed.flops_per_token(6) == full.flops_per_token(6)  # shorter than the window
    per_key = 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim
    assert full.flops_per_token(64) - windowed.flops_per_token(64) == per_key * (64 - 8)
    assert windowed.flops_per_token(64) == windowed.flops_per_token(8)


def test_sparse_compute_counts_its_active_matmul_weights_only(sandbox_registry):
    @registry.register("ffn", "wbtest_two_paths", width="mlp", residual=("a.down",))
    class TwoPaths(SparseCompute):
        """Two MLPs of which each token uses one (here always the first)."""

        def __init__(self, dim: int, hidden_dim: int):
            super().__init__()
            self.a, self.b = MLP(dim, hidden_dim, bias=False), MLP(dim, hidden_dim, bias=False)

        def forward(self, x):
            return self.a(x)

        def active_matmul_params(self) -> int:
            return self.a.up.weight.numel() + self.a.down.weight.numel()

    cfg = tiny(ffn="wbtest_two_paths", attention="naive", max_seq_len=32)
    model = TransformerLM(cfg)
    dense = TransformerLM(tiny(ffn="gelu", bias=False, attention="naive", max_seq_len=32))
    assert model.flops_per_token(32) == dense.flops_per_token(32)
    tokens = torch.randint(0, cfg.vocab_size, (2, 32))
    with FlopCounterMode(display=False) as counter:
        model(tokens).float().logsumexp(-1).mean().backward()
    assert abs(model.flops_per_token(32) / (counter.get_total_flops() / tokens.numel()) - 1) < 0.10


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
    # Raw parameters and no reset_parameters(): the model must neither crash nor overwrite them.
    @registry.register("ffn", "wbtest_low_rank", width="mlp", residual=())
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


def test_init_calls_reset_parameters_of_modules_it_does_not_draw(sandbox_registry):
    @registry.register("norm", "wbtest_scaled_norm")
    class ScaledNorm(torch.nn.Module):
        """x * s, s drawn at random by its own reset_parameters."""

        def __init__(self, dim: int):
            super().__init__()
            self.s = torch.nn.Parameter(torch.zeros(dim))

        def reset_parameters(self):
            torch.nn.init.uniform_(self.s, 0.5, 1.5)

        def forward(self, x):
            return x * self.s

    a, b = TransformerLM(tiny(norm="wbtest_scaled_norm"), init_seed=0), TransformerLM(tiny(norm="wbtest_scaled_norm"), init_seed=0)
    s0, s1 = a.blocks[0].attn_norm.s, a.blocks[0].ffn_norm.s
    assert ((s0 >= 0.5) & (s0 <= 1.5)).all() and not torch.equal(s0, s1)  # reset, each module its own draw
    torch.testing.assert_close(s0, b.blocks[0].attn_norm.s, atol=0, rtol=0)  # seeded: reproducible
    state = torch.random.get_rng_state()
    a.init_weights(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # a seeded init leaves the global stream alone
    assert not torch.equal(s0, b.blocks[0].attn_norm.s)


def test_init_zeroes_linear_biases_but_leaves_other_biases_to_their_module(sandbox_registry):
    @registry.register("norm", "wbtest_shift")
    class Shift(torch.nn.Module):
        """x + bias, with a bias of 0.25 and no reset_parameters."""

        def __init__(self, dim: int):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.full((dim,), 0.25))

        def forward(self, x):
            return x + self.bias

    model = TransformerLM(tiny(norm="wbtest_shift", bias=True), init_seed=0)
    assert (model.blocks[0].attn_norm.bias == 0.25).all()
    assert (model.blocks[0].attn.qkv.bias == 0).all() and (model.blocks[0].ffn.down.bias == 0).all()


def test_residual_projections_come_from_the_model_and_the_ffns_declaration(sandbox_registry):
    assert TransformerLM(tiny(n_layers=2)).residual_projections() == {f"blocks.{i}.{n}" for i in (0, 1) for n in ("attn.out", "ffn.down")}
    registry.register("ffn", "wbtest_typo", width="mlp", residual=("dwn",))(MLP)
    with pytest.raises(ValueError, match=r"ffn 'wbtest_typo' declares residual=\('dwn',\), but 'dwn' matches none of its nn.Linear layers \(up, down\)"):
        TransformerLM(tiny(ffn="wbtest_typo"))


class AuxFFN(AuxLossSource):
    """An MLP whose training forward reports a fixed auxiliary loss (for the test)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.mlp = MLP(dim, hidden_dim, bias=False)

    def forward(self, x):
        self.aux_loss = torch.tensor(0.5) + 0 * x.sum() if self.training else None
        return self.mlp(x)


def test_training_loss_adds_the_aux_loss_of_every_source(sandbox_registry):
    registry.register("ffn", "wbtest_aux", width="mlp", residual=("mlp.down",))(AuxFFN)
    model = TransformerLM(tiny(ffn="wbtest_aux", n_layers=3), init_seed=0)
    tokens = torch.randint(0, 64, (2, 9))
    lm = F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
    model.train()
    torch.testing.assert_close(model(tokens[:, :-1], targets=tokens[:, 1:]), lm + 3 * 0.5)
    model.eval()  # evaluation reports the language-modelling loss alone
    torch.testing.assert_close(model(tokens[:, :-1], targets=tokens[:, 1:]), lm)


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
