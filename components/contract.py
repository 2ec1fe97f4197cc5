"""The component contract: every property the model relies on, declared where a plugin author sees it.

docs/components.md is the full contract. Here, in code:

- ``KINDS``: per kind, what the model passes a component from its ``BuildContext``
  (components.context: ``sizes``, never user options; ``settings``, model-wide defaults an option may
  override) and the traits an entry may declare at registration, ``registry.register(kind, name,
  **traits)``, with their defaults.
- ``AuxLossSource`` and ``SparseCompute``: the two base classes a component subclasses when it
  changes what the model does around it (an extra training loss, FLOPs that are not its weights).
- ``Bound`` (and the aliases ``Positive``, ``NonNegative``, ``Finite``, ``Count``): the range of a
  numeric option, declared on the factory's parameter, ``eps: Positive = 1e-6``, and checked by
  ``registry.validate`` with the option's type, so a plugin declares its own ranges the same way.

A trait an entry leaves out gets its documented default; where that default changes what an
ablation compares (an FFN's width rule or its depth-scaled init, whether a placement gets a final
norm), registration warns with ``ContractWarning``.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Mapping

import torch
from torch import nn

from .parametrization import ROLES


class ContractWarning(UserWarning):
    """A registration left out a trait whose default changes what an ablation compares."""


@dataclass(frozen=True)
class Trait:
    """One declarable property of an entry: its default, the values it accepts, and what it means."""

    name: str
    default: Any
    accepts: Callable[[Any], bool]
    expects: str  # the accepted values, in words, for the TypeError
    doc: str
    if_missing: str | None = None  # warning text when a registration omits it; None: no warning

    def check(self, kind: str, entry: str, value: Any) -> Any:
        """The value as the entry keeps it: a mapping copied read-only, so a declaration cannot change
        after registration (by the plugin that passed it, or by anyone reading the traits)."""
        if not self.accepts(value):
            raise TypeError(f"{kind} '{entry}': trait {self.name}={value!r} must be {self.expects}")
        return types.MappingProxyType(dict(value)) if isinstance(value, Mapping) else value


@dataclass(frozen=True)
class Bound:
    """The range of a numeric option, declared on the factory's parameter as ``Annotated[float,
    Bound(gt=0)]``: ``registry.validate`` refuses a value outside it, and any NaN or infinity, before
    anything is built. No limits: any finite number."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def __post_init__(self) -> None:
        for limit in (self.gt, self.ge, self.lt, self.le):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit)):
                raise TypeError(f"Bound limits must be finite numbers, got {limit!r}")

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))

    def __str__(self) -> str:
        if self.ge is not None and self.le is not None and self.gt is None and self.lt is None:
            return f"in [{self.ge:g}, {self.le:g}]"
        parts = [f"{op} {limit:g}" for op, limit in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if limit is not None]
        return " and ".join(parts)


# The ranges the built-in components declare; a plugin may use these or write its own Bound.
Positive = Annotated[float, Bound(gt=0)]  # a finite number > 0: an eps, a RoPE theta, a base
NonNegative = Annotated[float, Bound(ge=0)]  # a finite number >= 0: a loss coefficient
Finite = Annotated[float, Bound()]  # any finite number
Count = Annotated[int, Bound(ge=1)]  # an integer >= 1


def bounds_of(hint: Any) -> tuple[Bound, ...]:
    """The Bounds an annotation declares (``Annotated[float, Bound(gt=0)]``), none for a plain type."""
    return tuple(m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Bound))


def _str_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, str) and v for v in value)


REFERENCE = Trait(
    "reference", None, lambda v: v is None or callable(v), "a callable (module, *inputs) -> output, or None",
    "Float64 reference ``fn(module, *inputs) -> output``, an independent formula computed from the "
    "module's own parameters; tests/test_contract.py checks the entry against it. None: no reference.",
)

WIDTH = Trait(
    "width", "mlp", lambda v: v in ("mlp", "glu"), "'mlp' or 'glu'",
    "The default hidden width rule: 'mlp' gives 4 * dim; 'glu' (three matrices: gate, up, down) gives "
    "LLaMA's int(2 * 4 * dim / 3) rounded up to multiple_of, so the FFN's parameters match the MLP's.",
    "declares no width and gets the MLP width 4*dim; a gated (3-matrix) FFN would then hold 1.5x the "
    "parameters of the MLP it is compared with. Declare width='glu' or width='mlp'.",
)

RESIDUAL = Trait(
    "residual", (), _str_tuple, "a tuple of fnmatch patterns, e.g. ('down',)",
    "fnmatch patterns over the names of the FFN's nn.Linear submodules (as in ``ffn.named_modules()``) "
    "whose weights write into the residual stream; config.init='gpt2' draws them with "
    "init_std / sqrt(2 * n_layers). () : none is depth-scaled.",
    "declares no residual projections, so init='gpt2' does not depth-scale any of its weights (built-in "
    "FFNs scale 'down'). Declare residual=('down',) (its output projection) or residual=().",
)

FINAL_NORM = Trait(
    "final_norm", True, lambda v: isinstance(v, bool), "True or False",
    "Whether the model puts a norm before the LM head: True where the residual stream leaves the last "
    "block un-normalised (pre-norm), False where the block already ends in a norm (post-norm).",
    "does not declare final_norm and gets a norm before the LM head (True), which a placement that "
    "already ends in a norm does not want. Declare final_norm=True or final_norm=False.",
)

RESIDUAL_INIT = Trait(
    "residual_init", None, lambda v: v is None or callable(v), "a callable n_layers -> gain, or None",
    "The init the placement's stability argument needs for the residual projections (each block's "
    "attn.out and the FFN's ``residual`` layers): drawn with the init scheme's std times "
    "``residual_init(n_layers)``, in place of gpt2's 1/sqrt(2 * n_layers). None: the scheme's own.",
)

KERNEL_WINDOW = Trait(
    "window", False, lambda v: isinstance(v, bool), "True or False",
    "Whether the kernel's forward takes ``window=`` (sliding window); a TransformerConfig with "
    "``window`` set and a kernel without it is refused when the config is built.",
)

KERNEL_SLOPES = Trait(
    "slopes", False, lambda v: isinstance(v, bool), "True or False",
    "Whether the kernel's forward takes ``slopes=`` (ALiBi's per-head linear bias); positions that "
    "declare ``slopes=True`` with a kernel without it are refused when the config is built.",
)

POSITION_SLOPES = Trait(
    "slopes", False, lambda v: isinstance(v, bool), "True or False",
    "Whether ``attention_slopes`` gives per-head slopes (ALiBi) the kernel must add to its scores.",
)

def _weights(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping) and all(
        isinstance(k, str) and k and v in ROLES for k, v in value.items()))


WEIGHTS = Trait(
    "weights", None, _weights, "None or a mapping {fnmatch pattern: 'hidden' | 'input' | 'output'}",
    "The μP role of each of the component's own parameters (components.parametrization): a mapping of "
    "fnmatch patterns over its parameter names, as in ``module.named_parameters()``, to 'hidden' (a "
    "matrix both of whose dimensions grow with width), 'input' (a vector, table, bias or scalar) or "
    "'output' (a matrix from the width to a fixed size, e.g. a router); the first matching pattern "
    "wins. A norm built with ``make_norm`` declares its own parameters. {}: it has none. None "
    "(undeclared): refused under model.parametrization mup / completep.",
)

MAX_LEN = Trait(
    "max_len", None, lambda v: v is None or v == "max_seq_len" or (type(v) is int and v > 0),
    "None, 'max_seq_len' or a positive int",
    "The longest sequence the scheme encodes: None (any length), 'max_seq_len' (a table of "
    "model.max_seq_len rows, as learned positions) or a fixed count; the built module's ``max_len`` is it.",
)


@dataclass(frozen=True)
class Kind:
    """What a component of one kind receives from the model, and the traits it may declare."""

    name: str
    interface: str  # the call contract, in words (docs/components.md repeats it)
    sizes: tuple[str, ...]  # BuildContext fields the model passes that an option may not override
    settings: tuple[str, ...]  # BuildContext fields (model-wide defaults) an option may override
    traits: tuple[Trait, ...]
    base: type | None = None  # an entry must be a subclass of it (None: any factory)

    def trait(self, name: str) -> Trait | None:
        return next((t for t in self.traits if t.name == name), None)

    @property
    def base_name(self) -> str:
        return "torch.nn.Module" if self.base is nn.Module else f"{self.base.__module__}.{self.base.__qualname__}"


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("norm", "module(dim, ...) ; forward(x (..., dim)) -> (..., dim), same dtype",
             sizes=("dim",), settings=("bias",), traits=(WEIGHTS, REFERENCE)),
        Kind("ffn", "module(dim, hidden_dim, ...) ; forward(x (B, T, dim)) -> (B, T, dim), same dtype",
             sizes=("dim", "hidden_dim"), settings=("bias",), traits=(WIDTH, RESIDUAL, WEIGHTS, REFERENCE)),
        Kind("norm_placement", "module(dim, n_layers, layer_idx, make_norm, branch_multiplier, ...) ; forward(x (B, T, dim), attn, ffn) -> (B, T, dim), a whole block",
             sizes=("dim", "n_layers", "layer_idx", "make_norm", "branch_multiplier"), settings=(),
             traits=(FINAL_NORM, RESIDUAL_INIT, WEIGHTS, REFERENCE),
             base=nn.Module),
        Kind("positions", "Positions module: embed(x, offset) on (B, T, dim), rotate(q, k, offset) on (B, H, T, head_dim)",
             sizes=("dim", "head_dim", "n_heads", "max_seq_len"), settings=("theta", "init_std"),
             traits=(MAX_LEN, POSITION_SLOPES, WEIGHTS, REFERENCE)),
        Kind("attention", "kernel module; forward(q (B, H, T, D), k, v (B, Hkv, T, D)) -> (B, H, T, D), causal",
             sizes=(), settings=(), traits=(KERNEL_WINDOW, KERNEL_SLOPES, WEIGHTS, REFERENCE)),
    )
}


def kind_contract(kind: str) -> Kind:
    """The contract of ``kind``; a kind the library does not define takes only ``reference``."""
    return KINDS.get(kind) or Kind(kind, "", (), (), (REFERENCE,))


class AuxLossSource(nn.Module):
    """A module that adds a loss to training (e.g. an MoE router's load-balancing loss).

    Its ``forward`` sets ``self.aux_loss`` to a scalar tensor, already weighted by the module's own
    coefficient, in training mode (None otherwise); ``TransformerLM.forward(tokens, targets=...)``
    adds the sum over all such modules to the language-modelling loss.
    """

    aux_loss: torch.Tensor | None = None


class SparseCompute(nn.Module):
    """A module whose per-token matmul work is not all of its weights (e.g. top-k of n experts).

    ``TransformerLM.flops_per_token`` counts ``active_matmul_params()`` for such a module instead of
    the weights of the nn.Linear layers inside it.
    """

    def active_matmul_params(self) -> int:
        """Matmul weights one token multiplies through in a forward pass."""
        raise NotImplementedError
