"""Position information: absolute encodings added to embeddings, or rotations of q and k.

Every position module has the same three hooks, so the model never checks which kind it holds:
``embed(x, offset)`` acts on token embeddings (B, T, dim), ``rotate(q, k, offset)`` on attention
heads (B, H, T, head_dim), and ``attention_slopes(device, dtype)`` gives per-head slopes of a linear
distance bias the attention kernel adds to its scores (ALiBi). Each is the identity (None for the
slopes) where the scheme does not act there.
``max_len`` is the longest sequence the scheme can encode (None: unbounded), declared at registration
as the ``max_len`` trait (``"max_seq_len"`` for learned positions), as ``slopes=True`` is for ALiBi,
whose slopes need a kernel that declares it takes them (components.contract).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .contract import Positive
from .registry import registry


class Positions(nn.Module):
    """Base: identity on every hook, no attention bias."""

    max_len: int | None = None

    def __init__(self) -> None:  # explicit, so the registry passes no sizes to schemes that need none
        super().__init__()

    def embed(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        return x

    def rotate(self, q: torch.Tensor, k: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k

    def attention_slopes(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """(n_heads,) slopes m_h: the kernel adds -m_h * (i - j) to query i's score for key j. None: no bias."""
        return None


@registry.register("positions", "none", weights={})
class NoPositions(Positions):
    """No position information (NoPE): causal masking alone orders tokens (Haviv et al., 2022)."""


@registry.register("positions", "learned", max_len="max_seq_len", weights={"weight": "input"})
class LearnedPositions(Positions):
    """Learned absolute position table added to embeddings (GPT-2); cannot go past ``max_seq_len``."""

    def __init__(self, dim: int, max_seq_len: int):
        super().__init__()
        self.max_len = max_seq_len
        self.weight = nn.Parameter(torch.zeros(max_seq_len, dim))

    def embed(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = x.shape[1]
        if offset + T > self.max_len:
            raise ValueError(
                f"learned positions cover {self.max_len} tokens; got position {offset + T - 1} "
                f"(they cannot extrapolate: use sinusoidal, rope or none)"
            )
        return x + self.weight[offset : offset + T]


@registry.register("positions", "sinusoidal", weights={})
class SinusoidalPositions(Positions):
    """Fixed sinusoidal encodings added to embeddings, any length (Vaswani et al., 2017).

    ``init_std`` (what TransformerLM passes) scales the table so its RMS equals the token embeddings'
    init std, the size a learned table starts at. Vaswani's unit-amplitude table is made for
    embeddings scaled up by sqrt(dim); added to GPT-2-initialised ones (std 0.02) it drowns them
    ~35:1, and measured 1.7 nats behind RoPE. None keeps the unit amplitude.
    """

    def __init__(self, dim: int, base: Positive = 10000.0, init_std: Positive | None = None):
        super().__init__()
        self.dim, self.base = dim, base
        self.scale = 1.0 if init_std is None else init_std * math.sqrt(2.0)  # sin/cos have RMS 1/sqrt(2)

    def embed(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = x.shape[1]
        dtype = torch.promote_types(x.dtype, torch.float32)
        pos = torch.arange(offset, offset + T, device=x.device, dtype=dtype)[:, None]  # (T, 1)
        inv = torch.exp(torch.arange(0, self.dim, 2, device=x.device, dtype=dtype) * (-math.log(self.base) / self.dim))
        pe = torch.zeros(T, self.dim, device=x.device, dtype=dtype)
        pe[:, 0::2] = torch.sin(pos * inv)
        pe[:, 1::2] = torch.cos(pos * inv[: self.dim // 2])
        return (x.to(dtype) + self.scale * pe).to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, where rotate_half(x1, x2) = (-x2, x1) on the two halves of the
    last axis (transformers' LLaMA convention), written half by half into one output (no concatenation).

    x (..., T, D) in any float dtype; cos, sin (T, D/2) in the compute dtype, which the result has.
    Under torch.compile (which cannot trace ``out=`` into strided views) the same two halves, computed
    from the input's halves and concatenated: inductor writes each half straight into the buffers
    attention reads, and autograd's derived backward stays one vectorised kernel. Written as
    ``x * cat(cos, cos) + cat(-x2, x1) * cat(sin, sin)`` instead, inductor first stored cat(-x2, x1)
    in fp32 buffers and read them back (the compiled step is 1.009x in bf16, 1.007x in fp32 with this
    form; docs/performance.md).
    """
    if torch.compiler.is_compiling():
        x1, x2 = x.to(cos.dtype).chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    out = torch.empty_like(x, dtype=cos.dtype)
    o1, o2 = out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1.0)  # x1 cos - x2 sin
    torch.mul(x2, cos, out=o2).addcmul_(x1, sin)  # x2 cos + x1 sin
    return out


class _Rotary(torch.autograd.Function):
    """The rotation and its backward, which is the inverse rotation (angle -theta): nothing but
    cos/sin is saved, and each direction is four fused multiply(-add) passes over half the tensor."""

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        ctx.input_dtype = x.dtype
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, -sin).to(ctx.input_dtype), None, None


def rope_table(n: int, head_dim: int, theta: float, dtype: torch.dtype,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (n, head_dim / 2) of RoPE's angles: position p, pair i turns by p * theta^(-2i/head_dim)."""
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.int64).to(dtype) / head_dim
    inv_freq = 1.0 / (theta**exponents)  # (head_dim/2,)
    freqs = torch.outer(torch.arange(n, device=device, dtype=dtype), inv_freq)  # (n, head_dim/2)
    return freqs.cos(), freqs.sin()


@torch.library.custom_op("components::rope_table", mutates_args=())
def _compiled_table(n: int, head_dim: int, theta: float, dtype: torch.dtype,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``rope_table`` as one opaque op, for torch.compile: traced as plain ops, the table is inlined
    into every kernel that reads it, which then evaluates cos and sin once per element of q, k and
    their gradients (B * H times too often; docs/performance.md); as an op its output is a buffer
    that those kernels read, saved for the backward (n * head_dim values)."""
    return rope_table(n, head_dim, theta, dtype, device)


@_compiled_table.register_fake
def _(n, head_dim, theta, dtype, device):
    return (torch.empty(n, head_dim // 2, dtype=dtype, device=device),
            torch.empty(n, head_dim // 2, dtype=dtype, device=device))


@registry.register("positions", "rope", weights={})
class RotaryEmbedding(Positions):
    """Rotary position embedding, RoPE (Su et al., 2021): rotates q and k by position-dependent angles.

    Pairs dimension i with i + head_dim/2 ("rotate half", as transformers' LLaMA), so HF weights
    load unpermuted. cos/sin are cached in fp32 (float64 for float64 inputs), grown on demand, and
    applied in fp32 whatever the input dtype; the result is cast back to it.
    """

    def __init__(self, head_dim: int, theta: Positive = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rope needs an even head_dim, got {head_dim}")
        self.head_dim, self.theta = head_dim, theta
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def cos_sin(self, length: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (length, head_dim / 2): the angle of each rotated pair (i, i + head_dim/2)
        at positions 0..length-1."""
        if torch.compiler.is_compiling():  # in the graph, as one opaque op (_compiled_table)
            return _compiled_table(length, self.head_dim, float(self.theta), dtype, device)
        key = (device, dtype)
        cached = self._cache.get(key)
        if cached is None or cached[0].shape[0] < length:
            n = max(length, 2 * cached[0].shape[0] if cached is not None else length)
            # A cache first filled under inference_mode (e.g. Lightning's sanity validation) would hold
            # inference tensors that autograd refuses later in training: always build ordinary ones.
            with torch.inference_mode(False), torch.no_grad():
                cached = self._cache[key] = rope_table(n, self.head_dim, self.theta, dtype, device)
        return cached[0][:length], cached[1][:length]

    def rotate(self, q: torch.Tensor, k: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        T = q.shape[-2]
        dtype = torch.promote_types(q.dtype, torch.float32)
        cos, sin = self.cos_sin(offset + T, q.device, dtype)
        cos, sin = cos[offset:], sin[offset:]  # (T, head_dim/2), broadcast over (B, H)
        if not torch.is_grad_enabled() or torch.compiler.is_compiling():
            # Evaluation and decoding: no autograd.Function overhead. Compiled: autograd derives the
            # backward of the plain formula, inductor fuses both, and the graph stays cacheable.
            return _rotate(q, cos, sin).to(q.dtype), _rotate(k, cos, sin).to(k.dtype)
        return _Rotary.apply(q, cos, sin).to(q.dtype), _Rotary.apply(k, cos, sin).to(k.dtype)

    def forward(self, q: torch.Tensor, k: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rotate(q, k, offset)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, theta={self.theta}"


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi's head slopes (Press et al., 2022), in float64.

    For n heads a power of two, the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8). Otherwise
    the paper's rule (as BLOOM): the slopes of the largest power of two c <= n, then every other
    slope of 2c (its odd-numbered ones), up to n in all.
    """
    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    c = 2 ** int(math.floor(math.log2(n_heads)))
    return power_of_two(c) + power_of_two(2 * c)[0::2][: n_heads - c]


@registry.register("positions", "alibi", slopes=True, weights={})
class AlibiPositions(Positions):
    """ALiBi, attention with linear biases (Press et al., 2022): no embedding, no rotation; head h's
    score for a key d tokens back is lowered by slope_h * d, which holds at any length."""

    def __init__(self, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self._slopes = torch.tensor(alibi_slopes(n_heads), dtype=torch.float64)  # not a buffer: stays fp64 under .to(bf16)
        self._cache: dict[tuple, torch.Tensor] = {}

    def attention_slopes(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        key = (torch.device(device), dtype)
        if key not in self._cache:
            with torch.inference_mode(False), torch.no_grad():  # an ordinary tensor, usable later in training
                self._cache[key] = self._slopes.to(device=device, dtype=dtype)
        return self._cache[key]

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}"
