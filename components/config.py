"""TransformerConfig: one plain, serialisable dataclass; one component spec per ablation axis.

Validated on construction, so a bad combination fails before any weight is allocated, with a
message that names the field. The sizes a config may leave to a rule (``n_kv_heads``, ``head_dim``,
``ffn_hidden_dim``: None) are resolved once, in ``__post_init__``, into the same fields; ``derived``
names those resolved by rule, and ``to_dict`` stores them as None again, as the user wrote them. A component spec is a registered name (``"rmsnorm"``) or a mapping of
the name and the component's options (``{"name": "rmsnorm", "eps": 1e-5}``), checked against the
component's signature (``registry.validate``) and kept canonical: a mapping without options is its name.
"""

from __future__ import annotations

import difflib
import inspect
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Union

from .contract import KINDS
from .ffn import glu_hidden_dim, mlp_hidden_dim
from .parametrization import PARAMETRIZATIONS
from .registry import InvalidOption, UnknownComponentError, registry, split_spec

# Field -> registry kind, for the component-name fields.
COMPONENT_FIELDS = {
    "norm": "norm",
    "norm_placement": "norm_placement",
    "ffn": "ffn",
    "positions": "positions",
    "attention": "attention",
}

# A component field's value: a registered name, or {"name": NAME, OPTION: VALUE, ...}.
ComponentSpec = Union[str, Dict[str, Any]]

# Weight-init schemes TransformerLM.init_weights knows (the ``init`` field; docs/init.md).
INIT_SCHEMES = ("gpt2", "fan_in", "olmo2")

# Where CausalSelfAttention normalises q and k (the ``qk_norm`` field).
QK_NORMS = ("none", "head", "proj")


def _one_of(field_name: str, value: Any, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise InvalidConfig(field_name, value, f"unknown {what} ({hint}available: {', '.join(allowed)})")


class InvalidConfig(ValueError):
    """A TransformerConfig field holds a value that cannot work; ``field`` names it."""

    def __init__(self, field_name: str, value, message: str):
        super().__init__(f"{field_name}={value!r}: {message}")
        self.field = field_name
        self.value = value
        self.reason = message


@dataclass
class TransformerConfig:
    """Architecture of a decoder-only transformer LM. Defaults are the LLaMA recipe at a small size.

    ``dataclasses.replace`` carries resolved sizes over as if set: to change ``dim``, ``n_heads`` or
    ``ffn``, build a new config from ``to_dict()`` instead.
    """

    vocab_size: int = 2048
    max_seq_len: int = 256  # longest sequence trained on; bounds learned positions only
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: = n_heads (MHA); fewer: GQA; 1: MQA. Resolved on construction.
    head_dim: int | None = None  # None: dim // n_heads. Resolved on construction.
    norm: ComponentSpec = "rmsnorm"  # layernorm | rmsnorm | dyt, or {name: ..., option: value}
    # None: the norm's own default (RMSNorm 1e-6, LayerNorm 1e-5); set, it is the norm's `eps` option
    # (an error for a norm without one, e.g. dyt).
    norm_eps: float | None = None
    norm_placement: ComponentSpec = "pre"  # pre | post | parallel | reordered | sandwich
    ffn: ComponentSpec = "swiglu"  # relu | gelu | gelu_tanh | relu2 | swiglu | geglu | reglu | moe
    # None: 4*dim for MLPs, LLaMA's 2/3 rule for GLUs (parameter-matched). Resolved on construction.
    ffn_hidden_dim: int | None = None
    # GLU width is rounded up to this (LLaMA uses 256 at dim 4096). 1 keeps GLUs within 1% of the
    # MLP's parameters at any small dim; raise it for hardware-friendly widths at scale.
    multiple_of: int = 1
    ffn_dim_multiplier: float | None = None
    positions: ComponentSpec = "rope"  # learned | sinusoidal | rope | alibi | none
    rope_theta: float = 10000.0
    attention: ComponentSpec = "sdpa"  # naive | sdpa | flash
    # Sliding-window attention (Mistral): query i sees keys j with i - window < j <= i. None: full causal.
    window: int | None = None
    # QK-norm with the model's norm kind: "head" over each q/k head before RoPE (Qwen3), "proj" over
    # the whole q and k projections before the head split (OLMo 2), "none".
    qk_norm: str = "none"
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
    # How init, learning rates and multipliers scale with width and depth (components.parametrization,
    # docs/parametrization.md): standard | mup (Yang et al. 2022) | completep (Dey et al. 2025).
    parametrization: str = "standard"
    # The width (mup, completep) and depth (completep) the hyperparameters were tuned at; m_d = dim / base_dim,
    # m_L = n_layers / base_layers. None: this config is its own base.
    base_dim: int | None = None
    base_layers: int | None = None
    # The head_dim at the base shape (mup, completep: attention scores scale sqrt(base_head_dim) / head_dim).
    # None: base_dim / n_heads (heads kept as width grows), or head_dim itself where head_dim is set by hand.
    base_head_dim: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "dim", "n_layers", "n_heads", "multiple_of"):
            self._positive(name)
        for name in ("n_kv_heads", "head_dim", "ffn_hidden_dim", "window"):
            if getattr(self, name) is not None:
                self._positive(name)
        for name in ("norm_eps", "ffn_dim_multiplier", "rope_theta", "init_std"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value) and value > 0):
                raise InvalidConfig(name, value, "must be a finite positive number")
        _one_of("qk_norm", self.qk_norm, QK_NORMS, "QK-norm")
        _one_of("init", self.init, INIT_SCHEMES, "init scheme")
        _one_of("parametrization", self.parametrization, PARAMETRIZATIONS, "parametrization")
        for name, kind in COMPONENT_FIELDS.items():
            value = getattr(self, name)
            try:  # the sizes the model passes are not options; canonical form kept
                setattr(self, name, registry.validate(kind, value, KINDS[kind].sizes))
            except (UnknownComponentError, InvalidOption) as exc:
                raise InvalidConfig(name, value, str(exc)) from None
        if self.norm_eps is not None:
            self._check_norm_eps()
        self._check_declared()
        self._check_parametrization()
        self._resolve_sizes()

    def _check_parametrization(self) -> None:
        """base_dim / base_layers only where read; under mup / completep every component declares its
        weights' roles, and under completep the placement applies the branch multiplier itself."""
        reads = {"base_dim": self.parametrization != "standard", "base_layers": self.parametrization == "completep",
                 "base_head_dim": self.parametrization != "standard"}
        for name, read in reads.items():
            value = getattr(self, name)
            if value is not None and not read:
                where = "completep" if name == "base_layers" else "mup or completep"
                raise InvalidConfig(name, value, f"is read only under parametrization {where}, not "
                                    f"{self.parametrization!r} (it would be silently ignored)")
            if value is not None:
                self._positive(name)
        if self.parametrization == "standard":
            return
        if self.base_dim is not None and self.head_dim is None and self.base_head_dim is None and self.base_dim % self.n_heads:
            raise InvalidConfig("base_dim", self.base_dim, f"must be divisible by n_heads={self.n_heads} "
                                "(the base head_dim is base_dim / n_heads)")
        for name, kind in COMPONENT_FIELDS.items():
            entry = registry.get(kind, self.component(name)[0])
            if entry.traits["weights"] is None:
                raise InvalidConfig(name, getattr(self, name), f"{kind} '{entry.name}' does not declare its weights' "
                                    f"roles, which parametrization {self.parametrization!r} scales by; register it "
                                    "with weights={pattern: 'hidden' | 'input' | 'output', ...} (docs/parametrization.md)")
        if self.parametrization == "completep":
            entry = registry.get("norm_placement", self.component("norm_placement")[0])
            if entry.traits["residual_init"] is not None:
                raise InvalidConfig("norm_placement", self.norm_placement, f"norm_placement '{entry.name}' declares its own "
                                    "depth init (residual_init), which completep's depth rule would contradict")
            if "branch_multiplier" not in inspect.signature(entry.factory).parameters:
                raise InvalidConfig("norm_placement", self.norm_placement, f"norm_placement '{entry.name}' does not take "
                                    "branch_multiplier, so completep cannot scale its residual branches by 1/m_L")

    def _check_declared(self) -> None:
        """The kernel takes what the model passes it (``window=``, ALiBi ``slopes=``: traits it declares), and
        the positions cover max_seq_len (their declared ``max_len``)."""
        name = self.component("attention")[0]
        kernel = registry.get("attention", name).traits

        def able(trait: str) -> str:
            return ", ".join(e.name for e in registry.entries("attention") if e.traits[trait]) or "none"

        if self.window is not None and not kernel["window"]:
            raise InvalidConfig("window", self.window, f"attention '{name}' has no sliding window (kernels with one: {able('window')})")
        positions = self.component("positions")[0]
        limit = registry.get("positions", positions).traits["max_len"]
        if type(limit) is int and self.max_seq_len > limit:
            raise InvalidConfig("max_seq_len", self.max_seq_len, f"positions '{positions}' encode at most {limit} tokens")
        if registry.get("positions", positions).traits["slopes"] and not kernel["slopes"]:
            raise InvalidConfig("attention", self.attention, f"positions '{positions}' bias the scores by ALiBi slopes, which "
                                f"attention '{name}' cannot add (kernels that can: {able('slopes')})")

    def _resolve_sizes(self) -> None:
        """Each size left to its rule (None), resolved into its own field; ``derived`` names them."""
        if self.head_dim is None and self.dim % self.n_heads:
            raise InvalidConfig("dim", self.dim, f"must be divisible by n_heads={self.n_heads}")
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            raise InvalidConfig("n_kv_heads", self.n_kv_heads, f"must divide n_heads={self.n_heads}")
        rules = {"n_kv_heads": lambda: self.n_heads, "head_dim": lambda: self.dim // self.n_heads,
                 "ffn_hidden_dim": self._ffn_width}
        self.derived = frozenset(name for name in rules if getattr(self, name) is None)
        for name in self.derived:
            setattr(self, name, rules[name]())
        if self.component("positions")[0] == "rope" and self.head_dim % 2:
            raise InvalidConfig("head_dim", self.head_dim, "rope needs an even head_dim")

    def _check_norm_eps(self) -> None:
        """norm_eps is the norm's ``eps`` option: an error, not a silent drop, where the norm has none."""
        name, options = self.component("norm")
        if "eps" in options:
            raise InvalidConfig("norm_eps", self.norm_eps, f"the norm spec sets eps={options['eps']!r} too; set it in one place")
        try:
            registry.validate("norm", {"name": name, **options, "eps": self.norm_eps}, KINDS["norm"].sizes)
        except InvalidOption as exc:
            raise InvalidConfig("norm_eps", self.norm_eps, f"the norm cannot take it: {exc}") from None

    def component(self, field_name: str) -> tuple[str, dict[str, Any]]:
        """(name, options) of a component field, e.g. ``component("norm") == ("rmsnorm", {})``."""
        return split_spec(COMPONENT_FIELDS[field_name], getattr(self, field_name))

    def _positive(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidConfig(name, value, "must be a positive integer")

    @property
    def is_glu(self) -> bool:
        """Whether the FFN declares the GLU width rule (its ``width`` trait, components.contract)."""
        return registry.get("ffn", self.component("ffn")[0]).traits["width"] == "glu"

    def _ffn_width(self) -> int:
        """The FFN width by the FFN's declared width rule, parameter-matched to the 4*dim MLP."""
        if self.is_glu:
            return glu_hidden_dim(self.dim, 4, self.multiple_of, self.ffn_dim_multiplier)
        return mlp_hidden_dim(self.dim)

    def to_dict(self) -> dict:
        """The fields as the user gave them: a size resolved by its rule is None, so a stored config
        re-derives it (and old stored configs, which hold None there, read the same)."""
        return {k: None if k in self.derived else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "TransformerConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfig(unknown[0], data[unknown[0]], f"unknown field (fields: {', '.join(sorted(known))})")
        return cls(**data)
