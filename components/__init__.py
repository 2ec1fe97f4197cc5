"""Interchangeable transformer components and the model they assemble into. Plain PyTorch only.

    from components import RMSNorm, SwiGLU, RotaryEmbedding, TransformerLM, TransformerConfig, registry
"""

from .attention import FlashAttention, FlashAttentionUnavailable, NaiveAttention, SDPAttention, repeat_kv
from .block import Block, CausalSelfAttention
from .config import InvalidConfig, TransformerConfig
from .ffn import GLU, MLP, GeGLU, ReGLU, SwiGLU, glu_hidden_dim, mlp_hidden_dim
from .model import TransformerLM
from .norms import LayerNorm, RMSNorm
from .placement import post, pre
from .positions import LearnedPositions, NoPositions, Positions, RotaryEmbedding, SinusoidalPositions
from .registry import Registry, UnknownComponentError, registry

__all__ = [
    "Block", "CausalSelfAttention", "FlashAttention", "FlashAttentionUnavailable", "GLU", "GeGLU",
    "InvalidConfig", "LayerNorm", "LearnedPositions", "MLP", "NaiveAttention", "NoPositions",
    "Positions", "RMSNorm", "ReGLU", "Registry", "RotaryEmbedding", "SDPAttention",
    "SinusoidalPositions", "SwiGLU", "TransformerConfig", "TransformerLM", "UnknownComponentError",
    "glu_hidden_dim", "mlp_hidden_dim", "post", "pre", "registry", "repeat_kv",
]
