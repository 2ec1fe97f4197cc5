"""Causal attention kernels: softmax(q k^T / sqrt(d) + bias) v with a causal mask, three implementations.

What each name guarantees (the naive-vs-sdpa ablation compares these; docs/components.md, "Attention kernels"):

- ``naive``: always the explicit formula, scores materialised and softmaxed in at least fp32;
  memory grows with T * S.
- ``sdpa``: the fastest exact kernel for the inputs by a fixed rule (``SDPAttention.takes_gemms``):
  PyTorch's fused ``scaled_dot_product_attention`` (memory linear in T), except on a CPU with
  native bf16 at most ``GEMM_MAX_KEYS`` keys without ALiBi, for bf16 and for fp32 under
  torch.compile, where two batched GEMMs around PyTorch's softmax (bf16: computed in fp32, rounded
  once) beat the flash CPU kernel (components.gemm_attention). Eager fp32 and float64 always take
  the fused kernel, so eager full-precision training keeps its bits.
- ``flash``: the flash-attn package on CUDA.

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
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .gemm_attention import gemm_attention
from .hardware import cpu_has_fast_bf16
from .masks import attention_bias, causal_mask
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


# The most keys for which ``sdpa`` attends with GEMMs on a native-bf16 CPU. Measured on a 2-core AMD
# EPYC with avx512_bf16 (docs/performance.md, issue 27), forward + backward, head_dim 64, 4 heads: in
# bf16 the GEMMs beat the flash CPU kernel 3.7x at 128 keys, 1.4-1.5x at 256-384, 1.2-2.0x at 512,
# 1.1x at 640, and lose from 768 keys on (0.8x; 0.6-0.7x at 1024-2048): they also compute the masked
# half; in fp32 under torch.compile 1.03x at 128, 1.18x at 256, 1.76x at 512, 1.27x at 768.
GEMM_MAX_KEYS = 512


@registry.register("attention", "sdpa", window=True, slopes=True, weights={})
class SDPAttention(nn.Module):
    """The fastest exact attention for the inputs: PyTorch's fused scaled_dot_product_attention
    (flash / memory-efficient / math backends), or ``gemm_attention`` on a CPU with native bf16 at
    up to ``GEMM_MAX_KEYS`` keys without ALiBi, for bf16 and for fp32 under torch.compile
    (``takes_gemms``), where the flash CPU kernel's backward is the slower one. Only that CPU kind
    was measured, so other CPUs keep the fused kernel. A fixed rule, not a timing, so a run's
    numerics do not depend on the machine's load; ``path`` forces one ("fused" keeps bf16 identical
    across CPU kinds).

    On a CPU without native bf16 arithmetic, bf16 inputs are attended in fp32 and the result cast
    back: there the bf16 kernel's backward is emulated and ~2.5x slower than fp32 (70 vs 28 ms at
    16 x 4 heads x 256 x 64), and fp32 is also the more accurate of the two. (Under torch.compile the
    autocast-disabled region keeps AOTAutograd from caching the graph: a cost only such CPUs pay.)
    """

    def __init__(self, path: Literal["auto", "fused", "gemm"] = "auto"):
        super().__init__()
        self.path = path
        self.native_cpu_bf16 = cpu_has_fast_bf16()  # else bf16 is attended in fp32 (below)

    def takes_gemms(self, q: torch.Tensor, k: torch.Tensor, slopes: torch.Tensor | None) -> bool:
        """Whether these inputs are attended by ``gemm_attention`` (decided from dtypes, shapes and
        whether torch.compile is tracing, so it traces one branch and guards on the rest). fp32
        takes the GEMMs only when compiled: eager, the flash kernel is as fast (0.86-1.32x across
        lengths) and keeps eager fp32 runs' bits."""
        if self.path != "auto":
            return self.path == "gemm"
        if not (self.native_cpu_bf16 and q.device.type == "cpu" and slopes is None and k.shape[-2] <= GEMM_MAX_KEYS):
            return False
        return q.dtype == torch.bfloat16 or (q.dtype == torch.float32 and torch.compiler.is_compiling())

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int | None = None,
                slopes: torch.Tensor | None = None) -> torch.Tensor:
        if self.takes_gemms(q, k, slopes):
            _check_heads(q, k)
            _check_window(window)
            return gemm_attention(q, k, v, window, slopes)
        if not self.native_cpu_bf16 and q.dtype == torch.bfloat16 and q.device.type == "cpu":
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
