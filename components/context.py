"""What the model passes a component it builds: one declared ``BuildContext`` per layer.

Each kind declares which fields of the context its entries receive (``components.contract.KINDS``:
``sizes`` and ``settings``), and ``registry.build(kind, spec, context)`` passes a factory those of
them its signature names, so every call site in the model is the same one line::

    context = BuildContext.from_config(cfg, layer_idx)
    ffn = registry.build("ffn", cfg.ffn, context)          # SwiGLU(dim, hidden_dim, bias)
    place = registry.build("norm_placement", cfg.norm_placement, context)  # (dim, n_layers, layer_idx, make_norm)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from .parametrization import multipliers
from .registry import registry

if TYPE_CHECKING:
    from .config import TransformerConfig


@dataclass(frozen=True)
class BuildContext:
    """The sizes and model-wide settings of one layer, resolved from a TransformerConfig.

    ``make_norm(dim=None)`` builds a fresh norm of the configured kind over ``dim`` features (default
    ``dim``): a placement builds its norms with it, the attention its QK-norms, the model its final norm.
    """

    dim: int
    n_layers: int
    layer_idx: int  # 0-based index of the block being built (0 outside a block)
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int  # the FFN's width, config.ffn_hidden_dim
    max_seq_len: int
    bias: bool
    theta: float  # the RoPE base, config.rope_theta
    init_std: float
    norm: Any  # the norm spec, with config.norm_eps as its eps option when set
    # What each residual branch is multiplied by where it joins the stream: 1/m_L under completep, else 1.0.
    branch_multiplier: float = 1.0

    @classmethod
    def from_config(cls, cfg: TransformerConfig, layer_idx: int = 0) -> BuildContext:
        name, options = cfg.component("norm")
        if cfg.norm_eps is not None:  # the norm's eps option: an error for a norm without one, not a silent drop
            options = {**options, "eps": cfg.norm_eps}
        return cls(
            dim=cfg.dim, n_layers=cfg.n_layers, layer_idx=layer_idx, n_heads=cfg.n_heads, n_kv_heads=cfg.n_kv_heads,
            head_dim=cfg.head_dim, hidden_dim=cfg.ffn_hidden_dim, max_seq_len=cfg.max_seq_len, bias=cfg.bias,
            theta=cfg.rope_theta, init_std=cfg.init_std, norm={"name": name, **options},
            branch_multiplier=multipliers(cfg).branch,
        )

    def make_norm(self, dim: int | None = None) -> nn.Module:
        """A fresh norm of the configured kind over ``dim`` features (default the model's ``dim``)."""
        return registry.build("norm", self.norm, self, **({} if dim is None else {"dim": dim}))
