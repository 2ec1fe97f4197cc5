"""FLOP accounting and model FLOP utilisation (MFU), as plain arithmetic.

``train_flops_per_token`` recomputes, from a TransformerConfig alone, what
``TransformerLM.flops_per_token`` counts from the built modules (the tests check they agree):
matmul FLOPs only, forward + backward = 3x forward, attention over the full (unmasked) T x T.
"""

from __future__ import annotations

from .timing import median


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of one (m, k) @ (k, n) matrix product: a multiply and an add per term."""
    return 2 * m * k * n


def matmul_weights(cfg) -> int:
    """Weights of every matrix multiplication of one token's forward pass (LM head included).

    ``cfg`` is a ``components.TransformerConfig``.
    """
    q_and_out = 2 * cfg.dim * cfg.n_heads * cfg.head_dim
    kv = 2 * cfg.dim * cfg.n_kv_heads * cfg.head_dim
    ffn = (3 if cfg.is_glu else 2) * cfg.dim * cfg.ffn_hidden_dim
    return cfg.n_layers * (q_and_out + kv + ffn) + cfg.dim * cfg.vocab_size


def train_flops_per_token(cfg, seq_len: int) -> int:
    """Training FLOPs per token: 6 per matmul weight, plus 12 * layers * T * heads * head_dim for
    the attention scores and their weighted sum (PaLM appendix B convention)."""
    attention = 2 * 2 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_dim
    return 3 * (2 * matmul_weights(cfg) + attention)


def achieved_flops(flops_per_step: float, step_seconds: float) -> float:
    """FLOP/s sustained by a step of ``flops_per_step`` taking ``step_seconds``."""
    if step_seconds <= 0:
        raise ValueError(f"step time must be positive, got {step_seconds}")
    return flops_per_step / step_seconds


def mfu(flops_per_step: float, step_seconds: float, peak_flops: float) -> float:
    """Model FLOP utilisation: achieved FLOP/s as a fraction of ``peak_flops`` (here a GEMM peak
    measured on the same machine, not a datasheet figure)."""
    if peak_flops <= 0:
        raise ValueError(f"peak must be positive, got {peak_flops}")
    return achieved_flops(flops_per_step, step_seconds) / peak_flops


def paired_mfu(flops_per_step: float, step_seconds: list[float], gemm_flops: float, gemm_seconds: list[float]) -> float:
    """MFU against the square GEMM timed in the same interleaved rounds as the step: the median over
    rounds of (step FLOP/s) / (GEMM FLOP/s). A slow moment of a shared machine slows both alike, so
    it cancels, as in a paired speedup."""
    if len(step_seconds) != len(gemm_seconds) or not step_seconds:
        raise ValueError("paired_mfu needs two equally long, non-empty lists of round times")
    return median(mfu(flops_per_step, s, gemm_flops / g) for s, g in zip(step_seconds, gemm_seconds))
