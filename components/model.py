"""TransformerLM: token embedding, positions, a stack of blocks, final norm, LM head."""

from __future__ import annotations

import fnmatch
import math
import zlib

import torch
from torch import nn

from .block import Block, flatten_placements, nest_placements
from .config import TransformerConfig
from .context import BuildContext
from .contract import AuxLossSource, SparseCompute
from .embedding import TokenEmbedding
from .generation import KVCache, check_sampling, sample_next
from .loss import linear_cross_entropy
from .parametrization import READOUT, Parametrized, multipliers
from .positions import LearnedPositions
from .registry import registry


# The roles of the parameters the model owns itself; every other one is declared by its component.
MODEL_WEIGHTS = {"embed.weight": "input", "lm_head.weight": READOUT,
                 "blocks.*.attn.qkv.weight": "hidden", "blocks.*.attn.out.weight": "hidden", "blocks.*.attn.*.bias": "input"}


class TransformerLM(Parametrized):
    """Decoder-only language model assembled from registry components by a TransformerConfig."""

    def __init__(self, config: TransformerConfig, init_seed: int | None = None):
        super().__init__()
        self.config = cfg = config
        self.embed = TokenEmbedding(cfg.vocab_size, cfg.dim)
        context = BuildContext.from_config(cfg)
        self.positions = registry.build("positions", cfg.positions, context)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        placement = registry.get("norm_placement", cfg.component("norm_placement")[0])
        self.norm = context.make_norm() if placement.traits["final_norm"] else nn.Identity()
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        # Each placement's parameters are stored as its block's own (blocks.N.attn_norm.*), as before placements were modules.
        self.register_state_dict_post_hook(flatten_placements)
        self.register_load_state_dict_pre_hook(nest_placements)
        self.multipliers = multipliers(cfg)
        # Resolved once, here: a parameter no declaration covers is refused before any draw, and copies keep them.
        self._roles = None if self.multipliers.parametrization == "standard" else self._resolve_roles()
        self.init_weights(init_seed)

    def forward(self, tokens: torch.Tensor, offset: int = 0, targets: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) int64 -> logits (B, T, vocab_size).

        With ``targets`` (B, T): the mean next-token cross-entropy instead, fused with the LM head so
        the full logit matrix never exists (``components.loss``), plus in training mode the
        ``aux_loss`` of every ``AuxLossSource`` submodule that set one. Inside ``forward`` so that
        ``model.compile()`` covers the loss too.
        """
        h = self._readout(self.hidden_states(tokens, offset))
        if targets is None:
            return self.lm_head(h)
        loss = linear_cross_entropy(h, self.lm_head.weight, targets)
        if self.training:
            for module in self.modules():
                if isinstance(module, AuxLossSource) and module.aux_loss is not None:
                    loss = loss + module.aux_loss
        return loss

    def hidden_states(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """tokens (B, T) -> final normed hidden states (B, T, dim), before the LM head."""
        x = self.positions.embed(self.embed(tokens), offset)  # (B, T, dim)
        for block in self.blocks:
            x = block(x, self.positions, offset)
        return self.norm(x)

    def forward_cached(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """tokens (B, T) at absolute positions cache.length.. -> their logits (B, T, vocab_size), attending
        to every position already in ``cache`` (incremental decoding); their keys and values join it.

        """
        offset = cache.length
        x = self.positions.embed(self.embed(tokens), offset)  # (B, T, dim)
        for block, layer in zip(self.blocks, cache.layers):
            x = block(x, self.positions, offset, cache=layer)
        return self.lm_head(self._readout(self.norm(x)))

    def _readout(self, h: torch.Tensor) -> torch.Tensor:
        """The final hidden states times the logits multiplier (μP's 1/m_d readout in multiplier form)."""
        return h if self.multipliers.output == 1.0 else h * self.multipliers.output

    @torch.inference_mode()
    def generate(self, tokens: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, eos_id: int | None = None) -> torch.Tensor:
        """Continue ``tokens`` (B, T) int64 by up to ``max_new_tokens``: (B, T + n), the prompt included.

        One forward over the prompt fills a KV cache (``components.generation``), then each new token is
        one forward of length 1. temperature 0 is greedy (argmax); otherwise each token is drawn from
        softmax(logits / temperature), restricted to the ``top_k`` most probable tokens and to the
        nucleus of mass ``top_p`` when set, with a ``torch.Generator`` seeded by ``seed`` (None: torch's
        global RNG), so one seed gives one continuation. With ``eos_id``, a sequence that produced it
        continues with eos_id only, and generation stops once every sequence has. The model's mode is
        left as it is: call ``eval()`` first where training mode computes something else (MoE aux loss).
        """
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"tokens must be (batch, time) with at least one token, got shape {tuple(tokens.shape)}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        check_sampling(temperature, top_k, top_p)
        B, T = tokens.shape
        total = T + max_new_tokens
        max_len = self.positions.max_len
        if max_len is not None and total > max_len:
            raise ValueError(
                f"{self.config.component('positions')[0]} positions cover {max_len} tokens (max_seq_len); "
                f"a {T}-token prompt plus max_new_tokens={max_new_tokens} needs {total}"
            )
        if max_new_tokens == 0:
            return tokens
        cfg, weight = self.config, self.embed.weight
        cache = KVCache(cfg.n_layers, B, cfg.n_kv_heads, cfg.head_dim, total - 1, weight.dtype, weight.device)
        generator = None
        if seed is not None and temperature != 0:
            generator = torch.Generator(device=tokens.device).manual_seed(seed)
        out = torch.empty(B, total, dtype=tokens.dtype, device=tokens.device)
        out[:, :T] = tokens
        done = torch.zeros(B, dtype=torch.bool, device=tokens.device)
        logits = self.forward_cached(tokens, cache)[:, -1]  # (B, vocab)
        for i in range(T, total):
            nxt = sample_next(logits, temperature, top_k, top_p, generator)  # (B,)
            if eos_id is not None:
                nxt = nxt.masked_fill(done, eos_id)
                done |= nxt == eos_id
            out[:, i] = nxt
            if i + 1 == total or (eos_id is not None and bool(done.all())):
                return out[:, : i + 1]
            logits = self.forward_cached(out[:, i : i + 1], cache)[:, -1]
        return out

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """Initialise every parameter by ``config.init`` (docs/init.md; the contract: docs/components.md).

        Drawn here (``init_stds``): every nn.Linear weight, the token embedding (any nn.Embedding) and a
        learned position table. gpt2 (default): N(0, init_std), residual projections (each block's
        ``attn.out`` and the FFN's declared ``residual`` layers) scaled by 1/sqrt(2 * n_layers).
        fan_in: hidden linear layers N(0, 1/sqrt(fan_in)) (Mesh-TensorFlow/T5), tables and LM head
        N(0, init_std). olmo2: N(0, init_std) truncated at +-3 std everywhere. nn.Linear biases: zero.
        Every other parameter: its module's ``reset_parameters()`` (norms reset their gains to one),
        called before the draws; a module without one keeps what its constructor chose.

        With ``seed``, each drawn parameter comes from its own generator seeded by (seed, parameter
        name), and each ``reset_parameters()`` runs under the global RNG seeded by (seed, module name),
        so two models that share a name and shape start with identical values there: ablation
        variants differ only where their architectures differ.
        """
        stds = self.init_stds()
        drawn = set(stds)
        owner = {}  # parameter name -> (module name, the module holding it directly)
        for mod_name, module in self.named_modules():
            for p_name, _ in module.named_parameters(recurse=False):
                owner.setdefault(f"{mod_name}.{p_name}" if mod_name else p_name, (mod_name, module))
        linear_biases, to_reset = set(), {}
        for name, _ in self.named_parameters():  # tied weights appear once
            if name in drawn:
                continue
            mod_name, module = owner[name]
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] == "bias":
                linear_biases.add(name)
            elif callable(getattr(type(module), "reset_parameters", None)):
                to_reset[mod_name] = module
        for mod_name, module in to_reset.items():
            self._reset_module(mod_name, module, seed)
        cutoff = 3.0 if self.config.init == "olmo2" else None  # truncation, in standard deviations
        for name, p in self.named_parameters():
            if name in linear_biases:
                p.zero_()
            if name not in drawn:
                continue
            generator = None
            if seed is not None:
                generator = torch.Generator(device="cpu").manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
            std = stds[name]
            value = torch.empty(p.shape, dtype=torch.float32)
            if cutoff is None:
                value.normal_(0.0, std, generator=generator)
            else:
                nn.init.trunc_normal_(value, 0.0, std, -cutoff * std, cutoff * std, generator=generator)
            if p.device.type != "meta":
                p.copy_(value)

    @staticmethod
    def _reset_module(mod_name: str, module: nn.Module, seed: int | None) -> None:
        if seed is None:
            module.reset_parameters()
            return
        cuda = sorted({p.device.index or 0 for p in module.parameters(recurse=False) if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(zlib.crc32(f"{seed}:{mod_name}".encode()))
            module.reset_parameters()

    def residual_projections(self) -> set[str]:
        """Names of the nn.Linear layers that write into the residual stream: each block's attention
        output projection (``attn.out``, declared here) and the FFN layers its ``residual`` trait names."""
        ffn_name, _ = self.config.component("ffn")
        patterns = registry.get("ffn", ffn_name).traits["residual"]
        names = set()
        for i, block in enumerate(self.blocks):
            names.add(f"blocks.{i}.attn.out")
            linears = [n for n, m in block.ffn.named_modules() if isinstance(m, nn.Linear)]
            for pattern in patterns:
                matched = [n for n in linears if fnmatch.fnmatchcase(n, pattern)]
                if not matched:
                    raise ValueError(
                        f"ffn '{ffn_name}' declares residual={patterns!r}, but {pattern!r} matches none of its "
                        f"nn.Linear layers ({', '.join(linears) or 'none'})"
                    )
                names.update(f"blocks.{i}.ffn.{n}" for n in matched)
        return names

    def init_stds(self) -> dict[str, float]:
        """{parameter name: the std ``init_weights`` draws it with} under ``config.init``, for every
        linear layer's weight, the token embedding and a learned position table (nothing else is drawn).
        A placement's ``residual_init`` trait replaces the residual projections' depth scaling. Under
        mup / completep each std is multiplied by its role's init factor (``Multipliers.init``; under
        fan_in a matrix's 1/sqrt(fan_in) already holds the hidden factor m_d^-1/2), and completep
        evaluates gpt2's depth scaling at base_layers, so the init does not change with depth."""
        cfg, mult = self.config, self.multipliers
        std = cfg.init_std
        depth = cfg.base_layers if cfg.parametrization == "completep" and cfg.base_layers is not None else cfg.n_layers
        residual_std = std / math.sqrt(2 * depth) if cfg.init == "gpt2" else std
        # A placement may declare the residual projections' init its stability argument needs (DeepNorm's beta).
        gain = registry.get("norm_placement", cfg.component("norm_placement")[0]).traits["residual_init"]
        if gain is not None:
            residual_std = std * gain(cfg.n_layers)
        residual = self.residual_projections()
        roles = self.weight_roles() if mult.parametrization != "standard" else {}
        stds: dict[str, float] = {}
        for mod_name, module in self.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            name = prefix + "weight"
            factor = mult.init(roles[name]) if name in roles else 1.0
            if isinstance(module, (nn.Embedding, LearnedPositions)) or module is self.lm_head:
                stds[name] = std * factor
            elif isinstance(module, nn.Linear):
                if cfg.init == "fan_in":
                    fan_in_std = 1.0 / math.sqrt(module.in_features)
                    base = fan_in_std * gain(cfg.n_layers) if gain and mod_name in residual else fan_in_std
                    # 1/sqrt(fan_in) already scales a width-fed matrix (hidden, output) by m_d^-1/2
                    widthwise = roles.get(name) in ("hidden", "output")
                    stds[name] = base * factor * math.sqrt(mult.width) if widthwise else base * factor
                else:
                    stds[name] = (residual_std if mod_name in residual else std) * factor
        return stds

    def weight_roles(self) -> dict[str, str]:
        """{parameter name: its μP role} (components.parametrization), tied weights once. A parameter
        inside a module a registry entry built takes the role the innermost such entry's ``weights``
        trait declares for it (a norm built by a placement: the norm's); the model declares its own
        (``MODEL_WEIGHTS``). Under mup / completep resolved when the model is built (so a deep copy
        keeps them); under standard on each call. Raises ValueError for a component that declares
        nothing or a parameter no pattern covers."""
        return dict(self._roles) if self._roles is not None else self._resolve_roles()

    def _resolve_roles(self) -> dict[str, str]:
        roots = {name: entry for name, module in self.named_modules() if (entry := registry.built_by(module)) is not None}
        roles = {}
        for name, _ in self.named_parameters():
            root = max((r for r in roots if name.startswith(f"{r}.")), key=len, default=None)
            if root is None:
                owner, declared, local = "the model", MODEL_WEIGHTS, name
            else:
                entry = roots[root]
                owner, declared, local = f"{entry.kind} '{entry.name}'", entry.traits["weights"], name[len(root) + 1:]
                if declared is None:
                    raise ValueError(f"{owner} does not declare its weights' roles (register it with weights={{...}}), "
                                     f"so {name} has none")
            role = next((r for pattern, r in declared.items() if fnmatch.fnmatchcase(local, pattern)), None)
            if role is None:
                raise ValueError(f"{owner} declares weights={dict(declared)!r}, but no pattern covers its parameter "
                                 f"{local!r} ({name})")
            roles[name] = role
        return roles

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
        convention: 6 * (matmul weights, LM head included) + 12 * n_layers * keys * n_heads * head_dim
        for the attention scores and weighted sum, where keys = seq_len (the full, unmasked T x T) or,
        with a sliding window, min(seq_len, window). A ``SparseCompute`` module counts its
        ``active_matmul_params()`` instead of the nn.Linear weights inside it."""
        cfg = self.config
        seq_len = seq_len or cfg.max_seq_len
        keys = seq_len if cfg.window is None else min(seq_len, cfg.window)
        attention = 2 * 2 * cfg.n_layers * keys * cfg.n_heads * cfg.head_dim
        return 3 * (2 * self.matmul_params() + attention)

    def matmul_params(self) -> int:
        """Matmul weights one token's forward pass multiplies through (LM head included)."""
        total, sparse = 0, []
        for name, module in self.named_modules():
            if any(name.startswith(f"{s}.") for s in sparse):
                continue  # counted by the SparseCompute module that holds it
            if isinstance(module, SparseCompute):
                total += module.active_matmul_params()
                sparse.append(name)
            elif isinstance(module, nn.Linear):
                total += module.weight.numel()
        return total
