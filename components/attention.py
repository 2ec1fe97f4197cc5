"""Causal attention kernels: softmax(q k^T / sqrt(d) + bias) v with a causal mask, three implementations.

All share ``forward(q, k, v, *, window=None, slopes=None) -> out`` on (B, H, T, head_dim) tensors and
accept fewer key/value heads than query heads (GQA/MQA): key/value head j serves the ``H // H_kv``
consecutive query heads starting at ``j * H // H_kv``, as transformers' ``repeat_kv`` does.

Keys may outnumber queries (S > T, keys cached from earlier steps): query i then sits at absolute
position S - T + i (bottom-right alignment, as flash-attn). With ``pos(i)`` that position:

- ``window`` (sliding-window attention, Mistral): query i attends to keys j with
  ``pos(i) - window < j <= pos(i)``, i.e. itself and the ``window - 1`` keys before it. This is
  transformers' Mistral mask (``kv_idx > q_idx - sliding_window``) and flash-attn's
  ``window_size=(window - 1, 0)``. None: full causal attention.
- ``slopes`` (ALiBi, Press et al. 2022): a (H,) tensor; ``-slopes[h] * (pos(i) - j)`` is added to
  head h's scores before the softmax. None: no bias.

Each kernel declares at registration which of the two it takes (``window=True, slopes=True``); a
TransformerConfig asking a kernel for one it does not declare is refused when it is built.
"""

from __future__ import annotations

import importlib.util
import math

import torch
import torch.nn.functional as F
from torch import nn

from .hardware import cpu_has_fast_bf16
from .registry import registry

FLASH_INSTALL = "pip install 'lm-ablation-components[flash]' (or: pip install flash-attn --no-build-isolation) on a CUDA machine"


class FlashAttentionUnavailable(RuntimeError):
    """The flash kernel was chosen where it cannot run (no CUDA, or flash-attn not installed)."""


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, H_kv, T, D) -> (B, H_kv * n_rep, T, D), each kv head repeated for its group of q heads."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def _check_heads(q: torch.Tensor, k: torch.Tensor) -> int:
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads ({q.shape[1]}) must be a multiple of key/value heads ({k.shape[1]})")
    return q.shape[1] // k.shape[1]


def causal_mask(q: torch.Tensor, k: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """(T, S) bool, True where query i may attend to key j. With S > T (keys cached from earlier
    steps) query i sits at absolute position S - T + i and sees keys 0..S-T+i, as flash-attn does;
    with ``window``, only keys j > S-T+i - window."""
    T, S = q.shape[-2], k.shape[-2]
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    if window is not None:
        mask = mask.triu(diagonal=S - T - window + 1)
    return mask


def distances(q: torch.Tensor, k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(T, S): pos(i) - j, how far key j lies behind query i (negative for future keys)."""
    T, S = q.shape[-2], k.shape[-2]
    pos_q = torch.arange(S - T, S, device=q.device, dtype=dtype)
    pos_k = torch.arange(S, device=q.device, dtype=dtype)
    return pos_q[:, None] - pos_k[None, :]


def attention_bias(q: torch.Tensor, k: torch.Tensor, window: int | None, slopes: torch.Tensor | None,
                   dtype: torch.dtype) -> torch.Tensor:
    """The additive score bias of one call: (T, S) causal/window mask as 0 / -inf, plus, with
    ``slopes``, ALiBi's -slope_h * (pos(i) - j), giving (H, T, S). Broadcasts over the batch."""
    mask = causal_mask(q, k, window)
    bias = torch.zeros(mask.shape, device=q.device, dtype=dtype).masked_fill_(~mask, float("-inf"))
    if slopes is None:
        return bias
    return bias - slopes.to(dtype)[:, None, None] * distances(q, k, dtype)  # (H, T, S)


def _check_window(window: int | None) -> None:
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ValueError(f"window must be a positive integer or None, got {window!r}")


@registry.register("attention", "naive", window=True, slopes=True, weights={})
class NaiveAttention(nn.Module):
    """Explicit masked softmax; materialises the (T, T) score matrix, so memory grows quadratically."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int | None = None,
                slopes: torch.Tensor | None = None) -> torch.Tensor:
        n_rep = _check_heads(q, k)
        _check_window(window)
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        # Scores, bias and softmax in at least fp32 (ALiBi's bias reaches -slope * T, too coarse in
        # bf16); float64 inputs stay float64 (a bare .float() would downcast them).
        dtype = torch.promote_types(q.dtype, torch.float32)
        scores = (q @ k.transpose(-2, -1)).to(dtype) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, T, S)
        if slopes is None:
            scores = scores.masked_fill(~causal_mask(q, k, window), float("-inf"))
        else:
            scores = scores + attention_bias(q, k, window, slopes, dtype)  # (H, T, S) over the batch
        probs = torch.softmax(scores, dim=-1).to(q.dtype)
        return probs @ v  # (B, H, T, D)


@registry.register("attention", "sdpa", window=True, slopes=True, weights={})
class SDPAttention(nn.Module):
    """PyTorch's fused scaled_dot_product_attention (flash / memory-efficient / math backends).

    On a CPU without native bf16 arithmetic, bf16 inputs are attended in fp32 and the result cast
    back: there the bf16 kernel's backward is emulated and ~2.5x slower than fp32 (70 vs 28 ms at
    16 x 4 heads x 256 x 64), and fp32 is also the more accurate of the two. (Under torch.compile the
    autocast-disabled region keeps AOTAutograd from caching the graph: a cost only such CPUs pay.)
    """

    def __init__(self):
        super().__init__()
        self.upcast_cpu_bf16 = not cpu_has_fast_bf16()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int | None = None,
                slopes: torch.Tensor | None = None) -> torch.Tensor:
        if self.upcast_cpu_bf16 and q.dtype == torch.bfloat16 and q.device.type == "cpu":
            with torch.autocast("cpu", enabled=False):  # autocast would cast the inputs back to bf16
                return self._attend(q.float(), k.float(), v.float(), window, slopes).to(q.dtype)
        return self._attend(q, k, v, window, slopes)

    @staticmethod
    def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None = None,
                slopes: torch.Tensor | None = None) -> torch.Tensor:
        n_rep = _check_heads(q, k)
        _check_window(window)
        if slopes is not None:
            # A float mask in the query's dtype (what every SDPA backend takes), (1, H, T, S) over the batch.
            # In bf16 a bias is rounded to 8 significant bits; those large enough to err by more than a
            # few hundredths weigh e^-20 or less. flash computes it in fp32 inside the kernel.
            mask = attention_bias(q, k, window, slopes, torch.promote_types(q.dtype, torch.float32)).to(q.dtype)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None], enable_gqa=n_rep > 1)
        if window is None and q.shape[-2] == k.shape[-2]:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=n_rep > 1)
        if window is None and q.shape[-2] == 1:  # one new query (cached decoding) sees every key: no mask to build
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=n_rep > 1)
        # is_causal aligns the mask top-left; with cached keys the queries are the *last* positions.
        return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(q, k, window), enable_gqa=n_rep > 1)


def flash_unavailable_reason() -> str | None:
    """Why the flash kernel cannot run here, or None if it can."""
    if not torch.cuda.is_available():
        return f"flash attention needs a CUDA GPU and none is visible; use attention 'sdpa', or run on a GPU after {FLASH_INSTALL}"
    if importlib.util.find_spec("flash_attn") is None:
        return f"flash attention needs the flash-attn package: {FLASH_INSTALL}"
    try:
        import flash_attn  # noqa: F401
    except (ImportError, OSError) as exc:  # a wheel built for another torch fails with "undefined symbol"
        return f"flash-attn is installed but does not import ({exc}); reinstall it against this torch: {FLASH_INSTALL}"
    return None


@registry.register("attention", "flash", window=True, slopes=True, weights={})
class FlashAttention(nn.Module):
    """The flash-attn package's fused kernel (Dao, 2023); CUDA, fp16/bf16 only, head_dim <= 256.

    Window and ALiBi run inside the kernel (``window_size``, fp32 ``alibi_slopes``), nothing materialised.
    """

    def __init__(self):
        super().__init__()
        reason = flash_unavailable_reason()
        if reason:
            raise FlashAttentionUnavailable(reason)
        from flash_attn import flash_attn_func

        self._fn = flash_attn_func

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int | None = None,
                slopes: torch.Tensor | None = None) -> torch.Tensor:
        _check_heads(q, k)
        _check_window(window)
        if q.dtype not in (torch.float16, torch.bfloat16):
            raise TypeError(f"flash attention runs in fp16/bf16 only, got {q.dtype}: train with precision bf16-mixed")
        # flash-attn wants (B, T, H, D) and handles GQA natively. Its window [pos(i) - left, pos(i) + right]
        # is inclusive, so `window` keys ending at the query's own is left = window - 1; its ALiBi bias is
        # -slope * |pos(i) - j|, equal to ours on the causal side.
        out = self._fn(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True,
            window_size=(-1, -1) if window is None else (window - 1, 0),
            alibi_slopes=None if slopes is None else slopes.to(device=q.device, dtype=torch.float32),
        )
        return out.transpose(1, 2)  # (B, H, T, D)
