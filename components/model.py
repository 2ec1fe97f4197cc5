"""TransformerLM: token embedding, positions, a stack of blocks, final norm, LM head."""

from __future__ import annotations

import math
import zlib

import torch
from torch import nn

from .block import Block, build_norm
from .config import TransformerConfig
from .loss import linear_cross_entropy
from .positions import LearnedPositions
from .registry import registry


class TransformerLM(nn.Module):
    """Decoder-only language model assembled from registry components by a TransformerConfig."""

    def __init__(self, config: TransformerConfig, init_seed: int | None = None):
        super().__init__()
        self.config = cfg = config
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.positions = registry.build(
            "positions", cfg.positions, dim=cfg.dim, head_dim=cfg.head_size, max_seq_len=cfg.max_seq_len, theta=cfg.rope_theta,
            init_std=cfg.init_std,
        )
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        place = registry.get("norm_placement", cfg.norm_placement).factory
        self.norm = build_norm(cfg) if getattr(place, "final_norm", True) else nn.Identity()
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.init_weights(init_seed)

    def forward(self, tokens: torch.Tensor, offset: int = 0, targets: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) int64 -> logits (B, T, vocab_size).

        With ``targets`` (B, T): the mean next-token cross-entropy instead, fused with the LM head so
        the full logit matrix never exists (``components.loss``). Inside ``forward`` so that
        ``model.compile()`` covers the loss too.
        """
        h = self.hidden_states(tokens, offset)
        if targets is not None:
            return linear_cross_entropy(h, self.lm_head.weight, targets)
        return self.lm_head(h)

    def hidden_states(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """tokens (B, T) -> final normed hidden states (B, T, dim), before the LM head."""
        x = self.positions.embed(self.embed(tokens), offset)  # (B, T, dim)
        for block in self.blocks:
            x = block(x, self.positions, offset)
        return self.norm(x)

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """Initialise every parameter by ``config.init`` (docs/init.md); zero biases, unit norm gains.

        gpt2 (default): N(0, init_std) for matrices and tables, residual projections scaled by
        1/sqrt(2 * n_layers). fan_in: hidden linear layers N(0, 1/sqrt(fan_in)) (Mesh-TensorFlow/T5),
        tables and LM head N(0, init_std). olmo2: N(0, init_std) truncated at +-3 std everywhere.

        With ``seed``, each parameter draws from its own generator seeded by (seed, parameter name),
        so two models that share a parameter name and shape start with identical values there:
        ablation variants differ only where their architectures differ.
        """
        stds = self.init_stds()
        cutoff = 3.0 if self.config.init == "olmo2" else None  # truncation, in standard deviations
        for name, p in self.named_parameters():  # tied weights appear once
            generator = None
            if seed is not None:
                generator = torch.Generator(device="cpu").manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
            std = stds.get(name)
            if std is not None:
                value = torch.empty(p.shape, dtype=torch.float32)
                if cutoff is None:
                    value.normal_(0.0, std, generator=generator)
                else:
                    nn.init.trunc_normal_(value, 0.0, std, -cutoff * std, cutoff * std, generator=generator)
                if p.device.type != "meta":
                    p.copy_(value)
            elif name.endswith("bias"):
                p.zero_()
            elif name.endswith("weight") and p.ndim == 1:  # norm gains
                p.fill_(1.0)
            # Anything else belongs to a third-party module and keeps the init its constructor chose.

    def init_stds(self) -> dict[str, float]:
        """{parameter name: the std ``init_weights`` draws it with} under ``config.init``, for every
        linear layer's weight, the token embedding and a learned position table (nothing else is drawn)."""
        cfg = self.config
        std = cfg.init_std
        residual_std = std / math.sqrt(2 * cfg.n_layers) if cfg.init == "gpt2" else std
        stds: dict[str, float] = {}
        for mod_name, module in self.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            if isinstance(module, (nn.Embedding, LearnedPositions)) or module is self.lm_head:
                stds[prefix + "weight"] = std
            elif isinstance(module, nn.Linear):
                if cfg.init == "fan_in":
                    stds[prefix + "weight"] = 1.0 / math.sqrt(module.in_features)
                else:
                    stds[prefix + "weight"] = residual_std if getattr(module, "is_residual_projection", False) else std
        return stds

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (tied weights once). non_embedding drops the token and position tables
        (Kaplan et al., 2020); an untied LM head still counts, a tied one goes with the embedding."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed.weight.numel()
            if isinstance(self.positions, LearnedPositions):
                n -= self.positions.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward = 3x forward), matmuls only, Chinchilla/PaLM
        convention: 6 * (matmul weights, LM head included) + 12 * n_layers * seq_len * n_heads * head_dim
        for the attention scores and weighted sum (counted over the full, unmasked T x T)."""
        cfg = self.config
        seq_len = seq_len or cfg.max_seq_len
        matmul = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        attention = 2 * 2 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_size
        return 3 * (2 * matmul + attention)
