"""TransformerConfig: one plain, serialisable dataclass; one string per ablation axis.

Validated on construction, so a bad combination fails before any weight is allocated, with a
message that names the field.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields

from .ffn import glu_hidden_dim, mlp_hidden_dim
from .registry import UnknownComponentError, registry

# Field -> registry kind, for the component-name fields.
COMPONENT_FIELDS = {
    "norm": "norm",
    "norm_placement": "norm_placement",
    "ffn": "ffn",
    "positions": "positions",
    "attention": "attention",
}

# Weight-init schemes TransformerLM.init_weights knows (the ``init`` field; docs/init.md).
INIT_SCHEMES = ("gpt2", "fan_in", "olmo2")


class InvalidConfig(ValueError):
    """A TransformerConfig field holds a value that cannot work; ``field`` names it."""

    def __init__(self, field_name: str, value, message: str):
        super().__init__(f"{field_name}={value!r}: {message}")
        self.field = field_name
        self.value = value
        self.reason = message


@dataclass
class TransformerConfig:
    """Architecture of a decoder-only transformer LM. Defaults are the LLaMA recipe at a small size."""

    vocab_size: int = 2048
    max_seq_len: int = 256  # longest sequence trained on; bounds learned positions only
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: = n_heads (MHA); fewer: GQA; 1: MQA
    head_dim: int | None = None  # None: dim // n_heads
    norm: str = "rmsnorm"  # layernorm | rmsnorm
    norm_eps: float | None = None  # None: the norm's own default (RMSNorm 1e-6, LayerNorm 1e-5)
    norm_placement: str = "pre"  # pre | post
    ffn: str = "swiglu"  # relu | gelu | gelu_tanh | relu2 | swiglu | geglu | reglu
    ffn_hidden_dim: int | None = None  # None: 4*dim for MLPs, LLaMA's 2/3 rule for GLUs (parameter-matched)
    # GLU width is rounded up to this (LLaMA uses 256 at dim 4096). 1 keeps GLUs within 1% of the
    # MLP's parameters at any small dim; raise it for hardware-friendly widths at scale.
    multiple_of: int = 1
    ffn_dim_multiplier: float | None = None
    positions: str = "rope"  # learned | sinusoidal | rope | none
    rope_theta: float = 10000.0
    attention: str = "sdpa"  # naive | sdpa | flash
    bias: bool = False  # biases in every linear layer and LayerNorm (GPT-2: True; LLaMA: False)
    tie_embeddings: bool = False  # share the token embedding with the LM head (GPT-2: True)
    init_std: float = 0.02
    # Weight init (TransformerLM.init_weights; measurements and sources in docs/init.md):
    #   gpt2   (default) N(0, init_std) for every matrix and table; residual projections (attention
    #          out, FFN down) N(0, init_std / sqrt(2 * n_layers)) (Radford et al., 2019).
    #   fan_in every hidden linear layer N(0, 1/sqrt(fan_in)): Mesh-TensorFlow's dense init, used by
    #          T5 and by Shazeer 2020's GLU comparison. Token/position tables and the LM head keep
    #          N(0, init_std), so the logits still start small. No depth scaling.
    #   olmo2  every matrix and table N(0, init_std) truncated at +-3 std, no depth scaling (OLMo 2, 2024).
    init: str = "gpt2"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "dim", "n_layers", "n_heads", "multiple_of"):
            self._positive(name)
        for name in ("n_kv_heads", "head_dim", "ffn_hidden_dim"):
            if getattr(self, name) is not None:
                self._positive(name)
        for name in ("norm_eps", "ffn_dim_multiplier", "rope_theta", "init_std"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise InvalidConfig(name, value, "must be a positive number")
        if self.init not in INIT_SCHEMES:
            close = difflib.get_close_matches(str(self.init), INIT_SCHEMES, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InvalidConfig("init", self.init, f"unknown init scheme ({hint}available: {', '.join(INIT_SCHEMES)})")
        for name, kind in COMPONENT_FIELDS.items():
            value = getattr(self, name)
            try:
                registry.get(kind, value)
            except UnknownComponentError as exc:
                raise InvalidConfig(name, value, str(exc)) from None
        if self.head_dim is None and self.dim % self.n_heads:
            raise InvalidConfig("dim", self.dim, f"must be divisible by n_heads={self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise InvalidConfig("n_kv_heads", self.n_kv_heads, f"must divide n_heads={self.n_heads}")
        if self.positions == "rope" and self.head_size % 2:
            raise InvalidConfig("head_dim", self.head_size, "rope needs an even head_dim")

    def _positive(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidConfig(name, value, "must be a positive integer")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.dim // self.n_heads

    @property
    def is_glu(self) -> bool:
        return bool(getattr(registry.get("ffn", self.ffn).factory, "is_glu", False))

    @property
    def hidden_dim(self) -> int:
        """FFN width: explicit, else parameter-matched to the 4*dim MLP."""
        if self.ffn_hidden_dim is not None:
            return self.ffn_hidden_dim
        if self.is_glu:
            return glu_hidden_dim(self.dim, 4, self.multiple_of, self.ffn_dim_multiplier)
        return mlp_hidden_dim(self.dim)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TransformerConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfig(unknown[0], data[unknown[0]], f"unknown field (fields: {', '.join(sorted(known))})")
        return cls(**data)
