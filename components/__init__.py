"""Interchangeable transformer components and the model they assemble into. Plain PyTorch only.

    from components import RMSNorm, SwiGLU, RotaryEmbedding, TransformerLM, TransformerConfig, registry
"""

from .attention import FlashAttention, FlashAttentionUnavailable, NaiveAttention, SDPAttention, repeat_kv
from .block import Block, CausalSelfAttention
from .config import InvalidConfig, TransformerConfig
from .context import BuildContext
from .contract import AuxLossSource, ContractWarning, SparseCompute
from .ffn import GLU, MLP, GeGLU, ReGLU, SwiGLU, glu_hidden_dim, mlp_hidden_dim
from .model import TransformerLM
from .moe import MoE
from .norms import DyT, LayerNorm, RMSNorm
from .parametrization import Multipliers, Parametrized, param_groups
from .placement import ParallelBlock, PostNorm, PreNorm, ReorderedNorm, SandwichNorm
from .placement_scaled import DeepNorm, LayerScale, ReZero
from .positions import LearnedPositions, NoPositions, Positions, RotaryEmbedding, SinusoidalPositions
from .registry import InvalidOption, Registry, UnknownComponentError, registry

__all__ = [
    "AuxLossSource", "Block", "BuildContext", "CausalSelfAttention", "ContractWarning", "DeepNorm", "DyT", "FlashAttention",
    "FlashAttentionUnavailable", "GLU", "GeGLU", "InvalidConfig", "InvalidOption", "LayerNorm", "LayerScale", "LearnedPositions",
    "MLP", "MoE", "Multipliers", "NaiveAttention", "NoPositions", "ParallelBlock", "Parametrized", "Positions", "PostNorm", "PreNorm", "RMSNorm", "ReGLU",
    "ReZero", "Registry", "ReorderedNorm", "RotaryEmbedding", "SDPAttention", "SandwichNorm", "SinusoidalPositions",
    "SparseCompute", "SwiGLU", "TransformerConfig", "TransformerLM", "UnknownComponentError",
    "glu_hidden_dim", "mlp_hidden_dim", "param_groups", "registry", "repeat_kv",
]
