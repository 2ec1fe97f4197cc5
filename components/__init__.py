"""Interchangeable transformer components and the model they assemble into. Plain PyTorch only.

    from components import RMSNorm, SwiGLU, RotaryEmbedding, TransformerLM, TransformerConfig, registry
"""

from .attention import FlashAttention, FlashAttentionUnavailable, NaiveAttention, SDPAttention, repeat_kv
from .block import Block, CausalSelfAttention
from .config import InvalidConfig, TransformerConfig
from .contract import AuxLossSource, ContractWarning, SparseCompute
from .ffn import GLU, MLP, GeGLU, ReGLU, SwiGLU, glu_hidden_dim, mlp_hidden_dim
from .model import TransformerLM
from .moe import MoE
from .norms import DyT, LayerNorm, RMSNorm
from .placement import parallel, post, pre, reordered, sandwich
from .positions import LearnedPositions, NoPositions, Positions, RotaryEmbedding, SinusoidalPositions
from .registry import InvalidOption, Registry, UnknownComponentError, registry

__all__ = [
    "AuxLossSource", "Block", "CausalSelfAttention", "ContractWarning", "DyT", "FlashAttention", "FlashAttentionUnavailable", "GLU", "GeGLU",
    "InvalidConfig", "InvalidOption", "LayerNorm", "LearnedPositions", "MLP", "MoE", "NaiveAttention", "NoPositions",
    "Positions", "RMSNorm", "ReGLU", "Registry", "RotaryEmbedding", "SDPAttention",
    "SinusoidalPositions", "SparseCompute", "SwiGLU", "TransformerConfig", "TransformerLM", "UnknownComponentError",
    "glu_hidden_dim", "mlp_hidden_dim", "parallel", "post", "pre", "registry", "reordered",
    "repeat_kv", "sandwich",
]
