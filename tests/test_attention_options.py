"""Attention options through the sublayer and the model: QK-norm (Qwen3 per head, OLMo 2 over the
projection) and sliding windows, against a float64 formula of the whole attention sublayer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from components import InvalidConfig, TransformerConfig, TransformerLM, registry
from components.attention import NaiveAttention
from components.positions import alibi_slopes
from conftest import entry_params, requires_flash

CPU_KERNELS = ["naive", "sdpa"]


def config(**overrides) -> TransformerConfig:
    base = dict(vocab_size=61, max_seq_len=16, dim=32, n_layers=1, n_heads=4, n_kv_heads=2)
    return TransformerConfig(**{**base, **overrides})


# --- float64 reference of the attention sublayer ------------------------------------------------


def norm_formula(x, norm, kind):
    """RMSNorm x / sqrt(mean(x^2) + eps) * g; LayerNorm (x - mean) / sqrt(var + eps) * g + b, over the last axis."""
    g = norm.weight.double()
    if kind == "rmsnorm":
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * g
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    b = norm.bias.double() if norm.bias is not None else 0.0
    return (x - mean) / torch.sqrt(var + norm.eps) * g + b


def rope_formula(x, theta):
    """(B, T, H, D): pair (i, i + D/2) rotated by angle pos * theta^(-2i/D)."""
    T, D = x.shape[1], x.shape[-1]
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]  # (T, 1, D/2)
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def sublayer_reference(attn, x, cfg):
    """The attention sublayer written out in float64 from the module's parameters: fused qkv
    projection, QK-norm (over each head's D, or over the whole projection), RoPE, causal softmax with
    window and ALiBi bias over grouped heads, output projection."""
    B, T, _ = x.shape
    H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    W, b = attn.qkv.weight.double(), attn.qkv.bias
    proj = x @ W.T + (b.double() if b is not None else 0.0)
    q, k, v = proj[..., : H * D], proj[..., H * D : (H + Hkv) * D], proj[..., (H + Hkv) * D :]
    if cfg.qk_norm == "proj":
        q, k = norm_formula(q, attn.q_norm, cfg.norm), norm_formula(k, attn.k_norm, cfg.norm)
    q, k, v = q.reshape(B, T, H, D), k.reshape(B, T, Hkv, D), v.reshape(B, T, Hkv, D)
    if cfg.qk_norm == "head":
        q, k = norm_formula(q, attn.q_norm, cfg.norm), norm_formula(k, attn.k_norm, cfg.norm)
    if cfg.positions == "rope":
        q, k = rope_formula(q, cfg.rope_theta), rope_formula(k, cfg.rope_theta)
    slopes = alibi_slopes(H) if cfg.positions == "alibi" else [0.0] * H
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    allowed = (j <= i) & ((i - j < cfg.window) if cfg.window is not None else True)
    out = torch.empty(B, T, H, D, dtype=torch.float64)
    for h in range(H):
        g = h // (H // Hkv)
        scores = torch.einsum("btd,bsd->bts", q[:, :, h], k[:, :, g]) / math.sqrt(D) - slopes[h] * (i - j)
        scores = scores.masked_fill(~allowed, float("-inf"))
        out[:, :, h] = torch.softmax(scores, dim=-1) @ v[:, :, g]
    Wo, bo = attn.out.weight.double(), attn.out.bias
    return out.reshape(B, T, H * D) @ Wo.T + (bo.double() if bo is not None else 0.0)


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Every parameter random (norm gains and biases too), so a wrong gain or a skipped bias shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * (0.3 if p.ndim > 1 else 1.0) + (p.ndim == 1))


@pytest.mark.parametrize("name", CPU_KERNELS)
@pytest.mark.parametrize("positions, window", [("rope", None), ("rope", 3), ("alibi", None), ("alibi", 4), ("none", 2)])
@pytest.mark.parametrize("norm, bias", [("rmsnorm", False), ("layernorm", True)])
@pytest.mark.parametrize("qk_norm", ["none", "head", "proj"])
def test_sublayer_matches_float64_formula(qk_norm, norm, bias, positions, window, name):
    cfg = config(qk_norm=qk_norm, norm=norm, bias=bias, positions=positions, window=window, attention=name, norm_eps=1e-5)
    model = TransformerLM(cfg).double()
    attn = model.blocks[0].attn
    randomise(attn)
    x = torch.randn(2, 9, cfg.dim, dtype=torch.float64)
    out = attn(x, model.positions)
    torch.testing.assert_close(out, sublayer_reference(attn, x, cfg), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("qk_norm, q_shape, k_shape", [("head", (8,), (8,)), ("proj", (32,), (16,))])
def test_qk_norm_parameters_are_named_and_sized(qk_norm, q_shape, k_shape):
    model = TransformerLM(config(qk_norm=qk_norm, norm="layernorm", bias=True))
    params = dict(model.named_parameters())
    assert params["blocks.0.attn.q_norm.weight"].shape == q_shape and params["blocks.0.attn.k_norm.weight"].shape == k_shape
    assert params["blocks.0.attn.q_norm.bias"].shape == q_shape
    assert torch.all(params["blocks.0.attn.q_norm.weight"] == 1.0)  # gains start at one
    assert not any("q_norm" in n for n, _ in TransformerLM(config()).named_parameters())


def test_qk_norm_uses_norm_eps():
    attn = TransformerLM(config(qk_norm="head", norm_eps=1e-3)).blocks[0].attn
    assert attn.q_norm.eps == 1e-3 and attn.k_norm.eps == 1e-3


def test_qk_norm_bounds_the_logits_whatever_the_projection_scale():
    # The point of QK-norm: with unit gains |q . k| <= D (Cauchy-Schwarz on RMS-1 vectors), however
    # large the projection weights grow; without it the scores grow with their square.
    x = torch.randn(1, 6, 32, dtype=torch.float64)
    for qk_norm in ("head", "proj"):
        model = TransformerLM(config(qk_norm=qk_norm, n_kv_heads=4)).double()
        attn = model.blocks[0].attn
        with torch.no_grad():
            attn.qkv.weight.mul_(1000.0)
        q, k, _ = attn.qkv(x).split(32, dim=-1)
        if qk_norm == "proj":
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = q.view(1, 6, 4, 8), k.view(1, 6, 4, 8)
        if qk_norm == "head":
            q, k = attn.q_norm(q), attn.k_norm(k)
        scores = torch.einsum("bthd,bshd->bhts", q, k)
        bound = 8 if qk_norm == "head" else 32  # per head: |q_h|^2 <= sum over all heads = H*D under "proj"
        assert scores.abs().max() <= bound + 1e-9


def test_qk_norm_gradients_reach_the_gains():
    model = TransformerLM(config(qk_norm="head"), init_seed=0)
    tokens = torch.randint(0, 61, (2, 12))
    model(tokens[:, :-1], targets=tokens[:, 1:]).backward()
    attn = model.blocks[0].attn
    assert attn.q_norm.weight.grad.abs().sum() > 0 and attn.k_norm.weight.grad.abs().sum() > 0


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [("heads", "did you mean 'head'"), ("qwen", "available: none, head, proj")])
def test_unknown_qk_norm_is_refused(value, message):
    with pytest.raises(InvalidConfig, match=message) as info:
        config(qk_norm=value)
    assert info.value.field == "qk_norm"


@pytest.mark.parametrize("window", [0, -4, 2.5, True, "8"])
def test_window_must_be_a_positive_integer(window):
    with pytest.raises(InvalidConfig, match="must be a positive integer") as info:
        config(window=window)
    assert info.value.field == "window"


def test_options_survive_the_dict_round_trip():
    cfg = config(window=5, qk_norm="proj")
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg


# --- sliding window through the model -----------------------------------------------------------


def logits(model, tokens):
    with torch.no_grad():
        return model(tokens)


@pytest.mark.parametrize("positions", ["rope", "alibi", "learned"])
@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_window_bounds_what_each_position_sees(name, n_layers, positions):
    # Changing token p changes the outputs at p .. p + n_layers * (w - 1) and nowhere else: each layer
    # reaches w - 1 tokens further back. With one layer: position i ignores every token before i - w + 1.
    w, T = 4, 16
    model = TransformerLM(config(window=w, attention=name, n_layers=n_layers, positions=positions), init_seed=0).double()
    tokens = torch.randint(0, 61, (1, T), generator=torch.Generator().manual_seed(1))
    base = logits(model, tokens)
    reach = n_layers * (w - 1)
    for p in (0, 3, 7):
        changed = tokens.clone()
        changed[0, p] = (changed[0, p] + 1) % 61
        moved = (logits(model, changed) - base).abs().amax(-1)[0] > 1e-9  # (T,)
        expected = (torch.arange(T) >= p) & (torch.arange(T) <= p + reach)
        assert torch.equal(moved, expected), (p, moved)


@pytest.mark.parametrize("positions", ["rope", "alibi"])
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_a_window_as_long_as_the_input_is_full_attention(name, positions):
    tokens = torch.randint(0, 61, (2, 12), generator=torch.Generator().manual_seed(2))
    full = logits(TransformerLM(config(attention=name, positions=positions, n_layers=2), init_seed=0), tokens)
    for window in (12, 13, 1000):
        model = TransformerLM(config(attention=name, positions=positions, n_layers=2, window=window), init_seed=0)
        torch.testing.assert_close(logits(model, tokens), full)
    short = TransformerLM(config(attention=name, positions=positions, n_layers=2, window=11), init_seed=0)
    assert not torch.allclose(logits(short, tokens), full)


def test_naive_and_sdpa_models_agree_with_every_option():
    tokens = torch.randint(0, 61, (2, 20), generator=torch.Generator().manual_seed(3))
    opts = dict(window=5, qk_norm="proj", positions="alibi", n_layers=2)
    naive = TransformerLM(config(attention="naive", **opts), init_seed=0)
    sdpa = TransformerLM(config(attention="sdpa", **opts), init_seed=0)
    torch.testing.assert_close(logits(naive, tokens), logits(sdpa, tokens), rtol=1e-5, atol=1e-5)


def test_a_kernel_with_the_plain_signature_serves_full_attention(sandbox_registry):
    # A third-party kernel written to forward(q, k, v) gets no keywords it did not ask for.
    @sandbox_registry.register("attention", "wbtest_plain")
    class Plain(nn.Module):
        def forward(self, q, k, v):
            return NaiveAttention()(q, k, v)

    tokens = torch.randint(0, 61, (1, 10))
    plain = TransformerLM(config(attention="wbtest_plain"), init_seed=0)
    torch.testing.assert_close(logits(plain, tokens), logits(TransformerLM(config(attention="naive"), init_seed=0), tokens))
    # It declares neither window nor slopes: a config asking for either is refused before any weight exists.
    with pytest.raises(InvalidConfig, match=r"window=3: attention 'wbtest_plain' has no sliding window \(kernels with one: flash, naive, sdpa\)"):
        config(attention="wbtest_plain", window=3)
    with pytest.raises(InvalidConfig, match=r"positions 'alibi' bias the scores by ALiBi slopes, which attention 'wbtest_plain' cannot add"):
        config(attention="wbtest_plain", positions="alibi")


@pytest.mark.parametrize("name", [p.values[0] for p in entry_params("attention")])
def test_every_kernel_declaring_window_and_slopes_takes_them(name):
    # The declared traits are what the kernel's forward accepts: window and ALiBi slopes against the naive kernel.
    traits = registry.get("attention", name).traits
    if name == "flash" or not (traits["window"] or traits["slopes"]):
        pytest.skip(f"attention '{name}': no CPU kernel, or declares neither")
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 9, 8), torch.randn(2, 2, 9, 8), torch.randn(2, 2, 9, 8)
    options = {**({"window": 3} if traits["window"] else {}), **({"slopes": torch.tensor([0.5, 0.25, 0.125, 0.0625])} if traits["slopes"] else {})}
    torch.testing.assert_close(registry.build("attention", name)(q, k, v, **options), NaiveAttention()(q, k, v, **options))


@pytest.mark.gpu
@requires_flash
@pytest.mark.parametrize("opts", [dict(window=24), dict(positions="alibi"),
                                  dict(positions="alibi", window=24, qk_norm="head")])
def test_flash_model_matches_sdpa_with_options(opts):
    cfg = dict(vocab_size=61, max_seq_len=128, dim=128, n_layers=2, n_heads=4, n_kv_heads=2, **opts)
    tokens = torch.randint(0, 61, (2, 128), device="cuda")
    flash = TransformerLM(TransformerConfig(attention="flash", **cfg), init_seed=0).cuda()
    sdpa = TransformerLM(TransformerConfig(attention="sdpa", **cfg), init_seed=0).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        a, b = logits(flash, tokens), logits(sdpa, tokens)
    torch.testing.assert_close(a.float(), b.float(), atol=3e-2, rtol=3e-2)
