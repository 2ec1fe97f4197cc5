"""Which keys each query may attend to, and the additive score bias that says so: the causal mask
(with keys cached from earlier steps and an optional sliding window) and ALiBi's distance bias.

Keys may outnumber queries (S > T): query i then sits at absolute position S - T + i (bottom-right
alignment, as flash-attn). Shared by every attention kernel (components.attention,
components.gemm_attention).
"""

from __future__ import annotations

import torch


def causal_mask(q: torch.Tensor, k: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """(T, S) bool, True where query i may attend to key j, for q's T queries and k's S keys."""
    return seen_keys(q.shape[-2], k.shape[-2], window, q.device)


def seen_keys(T: int, S: int, window: int | None, device: torch.device) -> torch.Tensor:
    """(T, S) bool, True where query i may attend to key j. With S > T (keys cached from earlier
    steps) query i sits at absolute position S - T + i and sees keys 0..S-T+i, as flash-attn does;
    with ``window``, only keys j > S-T+i - window."""
    mask = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)
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
