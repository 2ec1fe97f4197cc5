"""Key/value memory of a model's attention, from its ``model:`` config alone (no torch).

Grouped-query attention (Ainslie et al., 2023) shares each key/value head among several query heads:
fewer K/V projection weights and, what matters at inference, a smaller KV cache per token.
"""

from __future__ import annotations

from typing import Any

BF16_BYTES = 2  # the usual inference dtype of a KV cache


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def attention_memory(model: dict) -> dict | None:
    """``{"n_heads", "n_kv_heads", "head_dim", "kv_proj_params", "kv_cache_values_per_token"}``, or None
    when the config lacks the sizes.

    kv_proj_params = n_layers * 2 (K and V) * n_kv_heads * head_dim * (dim + bias);
    kv_cache_values_per_token = n_layers * 2 * n_kv_heads * head_dim (one K and one V vector per head).
    """
    dim, n_layers, n_heads = (_int(model.get(k)) for k in ("dim", "n_layers", "n_heads"))
    if not (dim and n_layers and n_heads):
        return None
    kv_heads = _int(model.get("n_kv_heads")) or n_heads
    head_dim = _int(model.get("head_dim")) or dim // n_heads
    per_layer = 2 * kv_heads * head_dim
    return {
        "n_heads": n_heads,
        "n_kv_heads": kv_heads,
        "head_dim": head_dim,
        "kv_proj_params": n_layers * per_layer * (dim + (1 if model.get("bias") else 0)),
        "kv_cache_values_per_token": n_layers * per_layer,
    }
