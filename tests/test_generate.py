"""Incremental decoding with a KV cache (``TransformerLM.generate``, components.generation).

The reference for the cache is the model itself without one: the logits of every position decoded
step by step must equal one full forward over the whole sequence (fp32, 1e-5), for every position
scheme and attention kernel in the registry, with and without a sliding window. Greedy generation is
checked against transformers' own ``generate`` on the same weights, and the sampling filters against
transformers' logits warpers.
"""

from __future__ import annotations

import pytest
import torch

from components import TransformerConfig, TransformerLM, registry
from components.attention import flash_unavailable_reason
from components.generation import KVCache, LayerCache, filter_logits, sample_next

VOCAB = 97


def small(positions: str = "rope", attention: str = "sdpa", window: int | None = None, qk_norm: str = "none",
          init_std: float = 0.3, **overrides) -> TransformerLM:
    """Two layers, grouped key/value heads, weights large enough (init_std 0.3) that greedy decoding
    has clear margins instead of near-ties. The logit comparisons use 0.1: logits up to ~2, so fp32
    rounding stays near 1e-6 instead of approaching the 1e-5 tolerance."""
    fields = dict(vocab_size=VOCAB, max_seq_len=32, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, positions=positions,
                  attention=attention, window=window, qk_norm=qk_norm, init_std=init_std)
    cfg = TransformerConfig(**{**fields, **overrides})
    return TransformerLM(cfg, init_seed=0).eval()


def incremental_logits(model: TransformerLM, tokens: torch.Tensor, chunks: list[int]) -> torch.Tensor:
    """Logits of ``tokens`` fed through one KV cache in pieces of the given lengths."""
    cfg = model.config
    weight = model.embed.weight
    cache = KVCache(cfg.n_layers, tokens.shape[0], cfg.n_kv_heads, cfg.head_dim, tokens.shape[1], weight.dtype,
                    weight.device)
    out, start = [], 0
    for n in chunks:
        out.append(model.forward_cached(tokens[:, start:start + n], cache))
        start += n
    assert start == tokens.shape[1] and cache.length == start
    return torch.cat(out, dim=1)


def ids(batch: int = 2, length: int = 14, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("window", [None, 3], ids=["full", "window3"])
@pytest.mark.parametrize("attention", registry.available("attention"))
@pytest.mark.parametrize("positions", registry.available("positions"))
def test_cached_decoding_equals_a_full_recompute(positions, attention, window):
    """Prefill 5 tokens, a chunk of 3 (several queries against a longer cache), then one at a time:
    14 positions, well past the window of 3, so the cache's keys outside the window are masked."""
    device, dtype, tol = "cpu", torch.float32, dict(rtol=0, atol=1e-5)
    if attention == "flash":
        reason = flash_unavailable_reason()
        if reason:
            pytest.skip(reason)
        device, dtype, tol = "cuda", torch.bfloat16, dict(rtol=0, atol=3e-2)  # flash runs in bf16 only
    model = small(positions, attention, window, qk_norm="head", init_std=0.1).to(device=device, dtype=dtype)
    tokens = ids().to(device)
    with torch.no_grad():
        full = model(tokens)
        cached = incremental_logits(model, tokens, [5, 3] + [1] * 6)
    torch.testing.assert_close(cached.float(), full.float(), **tol)


@pytest.mark.parametrize("qk_norm", ["none", "proj"])
@pytest.mark.parametrize("placement", ["post", "parallel", "sandwich"])
def test_cached_decoding_follows_every_block_wiring(placement, qk_norm):
    model = small(norm_placement=placement, qk_norm=qk_norm, init_std=0.1)
    tokens = ids()
    with torch.no_grad():
        torch.testing.assert_close(incremental_logits(model, tokens, [4] + [1] * 10), model(tokens), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["ffn", "norm"])
def test_cached_decoding_holds_for_every_ffn_and_norm(kind):
    """Per-token components (MoE routing included) see the same tokens cached or not."""
    for name in registry.available(kind):
        model = small(init_std=0.1, **{kind: name})
        tokens = ids()
        with torch.no_grad():
            torch.testing.assert_close(incremental_logits(model, tokens, [4] + [1] * 10), model(tokens), rtol=0,
                                       atol=1e-5, msg=lambda m, name=name: f"{kind} {name}: {m}")


def greedy_by_recompute(model: TransformerLM, tokens: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding the slow way: the whole sequence through the model for every new token."""
    with torch.no_grad():
        for _ in range(n):
            tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens


@pytest.mark.parametrize("positions", ["rope", "alibi", "learned"])
def test_greedy_generation_equals_greedy_decoding_without_a_cache(positions):
    model = small(positions, window=4)
    prompt = ids(length=6)
    out = model.generate(prompt, 20, temperature=0)
    assert out.shape == (2, 26) and torch.equal(out[:, :6], prompt)
    assert torch.equal(out, greedy_by_recompute(model, prompt, 20))
    assert len(set(out[0, 6:].tolist())) > 3  # not a degenerate repetition: the comparison means something


transformers = pytest.importorskip("transformers")
from workbench.interop import to_hf  # noqa: E402


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_greedy_generation_equals_transformers_generate(family):
    """The same weights in transformers (workbench.interop.to_hf): LLaMA (RoPE, GQA) and GPT-2 (learned positions)."""
    if family == "llama":
        model = small("rope")
    else:
        model = small("learned", norm="layernorm", ffn="gelu_tanh", bias=True, n_kv_heads=None)
    hf = to_hf(model).eval()
    prompt = ids(length=7, seed=3)
    ours = model.generate(prompt, 24, temperature=0)
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24, do_sample=False)
    assert torch.equal(ours, theirs)
    assert len(set(ours[0, 7:].tolist())) > 3


def test_sampling_filters_equal_transformers_logits_warpers():
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(4, VOCAB, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    for temperature, top_k, top_p in [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.8), (0.5, 20, 0.6), (2.0, 1, 0.9)]:
        expected = TemperatureLogitsWarper(temperature)(None, logits.clone())
        if top_k is not None:
            expected = TopKLogitsWarper(top_k)(None, expected)
        if top_p is not None:
            expected = TopPLogitsWarper(top_p)(None, expected)
        torch.testing.assert_close(filter_logits(logits, temperature, top_k, top_p), expected, rtol=0, atol=0)


def test_samples_follow_the_filtered_distribution():
    """100k draws of one row: frequencies match softmax(logits / T) renormalised over the top 4 (float64)."""
    logits = torch.tensor([2.0, 1.5, 1.0, 0.2, 0.1, -1.0, -3.0], dtype=torch.float64)
    temperature, top_k = 0.8, 4
    n = 100_000
    draws = sample_next(logits.expand(n, -1), temperature, top_k=top_k, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=logits.numel()).double() / n
    kept = torch.exp(logits[:top_k] / temperature)
    expected = torch.cat([kept / kept.sum(), torch.zeros(logits.numel() - top_k, dtype=torch.float64)])
    torch.testing.assert_close(freq, expected, rtol=0, atol=0.006)  # ~4 standard errors


def test_a_seeded_sampling_run_is_reproducible_and_leaves_the_global_rng_alone():
    model = small()
    prompt = ids(length=5)
    state = torch.get_rng_state()
    a = model.generate(prompt, 20, temperature=1.0, top_k=40, top_p=0.95, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, model.generate(prompt, 20, temperature=1.0, top_k=40, top_p=0.95, seed=7))
    assert not torch.equal(a, model.generate(prompt, 20, temperature=1.0, top_k=40, top_p=0.95, seed=8))
    assert torch.equal(model.generate(prompt, 20, temperature=0, seed=1), model.generate(prompt, 20, temperature=0, seed=2))


def test_learned_positions_stop_at_max_seq_len():
    model = small("learned")  # max_seq_len 32
    assert model.generate(ids(length=10), 22, temperature=0).shape == (2, 32)
    with pytest.raises(ValueError, match=r"learned positions cover 32 tokens \(max_seq_len\).*needs 33"):
        model.generate(ids(length=10), 23, temperature=0)
    assert small("rope").generate(ids(length=10), 40, temperature=0).shape == (2, 50)  # rope: no limit


def test_generation_stops_once_every_sequence_produced_eos():
    model = small()
    prompt = ids(length=6)
    free = model.generate(prompt, 12, temperature=0)
    eos = int(free[0, 8])  # row 0 produces it at its third new token
    stops = [int(torch.nonzero(free[r, 6:] == eos)[0]) if (free[r, 6:] == eos).any() else None for r in range(2)]
    out = model.generate(prompt, 12, temperature=0, eos_id=eos)
    assert torch.equal(out[0, :9], free[0, :9]) and (out[0, 9:] == eos).all()  # finished rows continue with eos only
    expected_len = 18 if stops[1] is None else 6 + max(stops) + 1
    assert out.shape[1] == expected_len
    one = model.generate(prompt[:1], 12, temperature=0, eos_id=eos)
    assert torch.equal(one, free[:1, :9])  # a single sequence stops right after eos


def test_bad_arguments_are_refused_by_name():
    model = small()
    for kwargs, message in [(dict(temperature=-1.0), "temperature"), (dict(top_k=0), "top_k"),
                            (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p")]:
        with pytest.raises(ValueError, match=message):
            model.generate(ids(), 3, **kwargs)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(ids(), -1)
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        model.generate(ids()[0], 3)
    assert torch.equal(model.generate(ids(), 0), ids())


def test_a_layer_cache_holds_what_it_was_given_and_refuses_more_than_its_capacity():
    cache = LayerCache(1, 2, 4, capacity=5, dtype=torch.float32, device=torch.device("cpu"))
    k1, v1 = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    k2, v2 = torch.randn(1, 2, 2, 4), torch.randn(1, 2, 2, 4)
    cache.update(k1, v1)
    k, v = cache.update(k2, v2)
    assert torch.equal(k, torch.cat([k1, k2], 2)) and torch.equal(v, torch.cat([v1, v2], 2)) and cache.length == 5
    with pytest.raises(ValueError, match="holds 5 positions"):
        cache.update(k2[:, :, :1], v2[:, :, :1])
