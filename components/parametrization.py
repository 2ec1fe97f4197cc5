"""How init, learning rates and forward multipliers scale with width and depth: standard, μP, CompleteP.

``multipliers(config)`` gives every factor the model and the optimizer apply (``Multipliers``);
``param_groups(model, lr, weight_decay, eps)`` the AdamW groups. Each parameter's role comes from the
component that owns it (its registry entry's ``weights`` trait, components.contract) or, for what the
model owns itself, from the model (``TransformerLM.weight_roles``). docs/parametrization.md gives
every rule with its source; with m_d = dim / base_dim and m_L = n_layers / base_layers:

    role      init std        Adam lr      Adam eps                 weight decay
    hidden    x m_d^-1/2      x 1/m_d      x 1/m_d (cP: 1/(m_d m_L))  x 1 (cP: x m_d)
    input     x 1             x 1          x 1                      x 1
    output    x 1/m_d         x 1/m_d      x 1                      x 1
    readout   x 1             x 1          x 1                      x 1     logits = lm_head(h / m_d)

plus q scaled by sqrt(base_head_dim / head_dim) (attention scale sqrt(base_head_dim) / head_dim) and,
under CompleteP, every residual branch by 1/m_L. Under ``standard``, and at the base shape under the
others, every factor is exactly 1.0, so those train bit for bit alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from torch import nn

PARAMETRIZATIONS = ("standard", "mup", "completep")

# The roles a component may declare for its parameters (its ``weights`` trait).
ROLES = ("hidden", "input", "output")
# The LM head's role, assigned by the model only: μP's readout in multiplier form (logits x 1/m_d).
READOUT = "readout"


@dataclass(frozen=True)
class Multipliers:
    """Every width/depth factor of one model; all exactly 1.0 under ``standard`` and at the base shape.

    ``width`` is m_d = dim / base_dim, ``depth`` m_L = n_layers / base_layers (1.0 unless completep).
    ``output`` multiplies the final hidden state before the LM head, ``q_scale`` the queries before the
    kernel's own 1/sqrt(head_dim), ``branch`` each residual branch where it joins the stream.
    """

    parametrization: str = "standard"
    width: float = 1.0
    depth: float = 1.0
    output: float = 1.0
    q_scale: float = 1.0
    branch: float = 1.0

    def init(self, role: str) -> float:
        """Init std factor. hidden: m_d^-1/2, so the variance is 1/fan_in relative to the base
        (TP5 Table 3, "init. var." of hidden weights 1/fan_in; nanoGPT-mup model.py init_std / sqrt(m_d)).
        output: 1/m_d (TP5 Table 3: output weights init var 1/fan_in^2)."""
        _check(role)
        if role == "hidden":
            return self.width ** -0.5
        return 1.0 / self.width if role == "output" else 1.0

    def lr(self, role: str) -> float:
        """Adam lr factor: 1/m_d for hidden and output weights (TP5 Table 3, Adam LR 1/fan_in;
        nanoGPT-mup configure_optimizers lr_scale = 1 / mup_width_multiplier)."""
        _check(role)
        return 1.0 / self.width if role in ("hidden", "output") else 1.0

    def eps(self, role: str) -> float:
        """Adam eps factor for hidden weights: 1/m_d, and 1/(m_d m_L) under CompleteP (CompleteP Table 1;
        nanoGPT-mup completep adam_eps *= 1/m_d * m_L^-alpha, here alpha = 1 and hidden weights only)."""
        _check(role)
        return 1.0 / (self.width * self.depth) if role == "hidden" else 1.0

    def weight_decay(self, role: str) -> float:
        """Weight-decay factor: m_d for hidden weights under CompleteP, so lr * wd is width-independent
        (CompleteP Table 1; nanoGPT-mup completep weight_decay / width_lr_scaling)."""
        _check(role)
        return self.width if role == "hidden" and self.parametrization == "completep" else 1.0


def _check(role: str) -> None:
    if role not in ROLES + (READOUT,):
        raise ValueError(f"unknown weight role {role!r} (roles: {', '.join(ROLES + (READOUT,))})")


STANDARD = Multipliers()


class Shape(Protocol):
    """What the rules read of a model's config (components.config.TransformerConfig is one; the config
    imports this module, so the type is declared here rather than imported)."""

    parametrization: str
    dim: int
    base_dim: int | None
    n_layers: int
    base_layers: int | None
    n_heads: int
    head_dim: int
    base_head_dim: int | None
    derived: frozenset[str]  # the sizes resolved by rule (head_dim among them when set by none)


def base_head_dim(config: Shape) -> int:
    """The head_dim at the base shape: ``base_head_dim`` where set (an experiment sets it to its base size's
    head_dim), else the head_dim the config would have at dim = base_dim with its heads (its own head_dim
    when that is set by hand)."""
    if config.base_head_dim is not None:
        return config.base_head_dim
    if "head_dim" in config.derived and config.base_dim is not None:
        return config.base_dim // config.n_heads
    return config.head_dim


def multipliers(config: Shape) -> Multipliers:
    """The factors ``config`` implies: TP5 Table 3 / nanoGPT-mup for mup, CompleteP Table 1 (alpha = 1) too."""
    if config.parametrization == "standard":
        return STANDARD
    width = config.dim / config.base_dim if config.base_dim is not None else 1.0
    depth = 1.0
    if config.parametrization == "completep" and config.base_layers is not None:
        depth = config.n_layers / config.base_layers
    q_scale = math.sqrt(base_head_dim(config) / config.head_dim)
    return Multipliers(config.parametrization, width=width, depth=depth, output=1.0 / width, q_scale=q_scale,
                       branch=1.0 / depth)


class Parametrized(nn.Module):
    """A model that declares its parametrization: ``multipliers`` and every parameter's role
    (``weight_roles()``: {parameter name: role}). ``param_groups`` splits such a model's parameters by
    role; any other module gets the standard groups. TransformerLM is one."""

    multipliers: Multipliers = STANDARD

    def weight_roles(self) -> dict[str, str]:
        raise NotImplementedError


def _decays(model: nn.Module) -> set[int]:
    """ids of the parameters AdamW decays: nn.Linear weights, except a tied LM head (it is the embedding)."""
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embed = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return linear - embed


def param_groups(model: nn.Module, lr: float, weight_decay: float, eps: float = 1e-8,
                 hidden_lr_ratio: float = 1.0) -> list[dict]:
    """AdamW parameter groups: decay nn.Linear weights, never norms, biases, embeddings or position tables
    (GPT-3, LLaMA practice). Under standard with ``hidden_lr_ratio`` 1 (any nn.Module): exactly those two
    groups, decay first. Otherwise (a ``Parametrized`` model): one group per (role, decays), in order of
    first appearance, with the role's lr, eps and weight-decay factors (``Multipliers``); the block matrices
    (roles hidden and output) learn at ``lr * hidden_lr_ratio`` times their factor, embeddings, norms,
    biases and the LM head at ``lr``."""
    decays = _decays(model)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    mult = model.multipliers if isinstance(model, Parametrized) else STANDARD
    if mult.parametrization == "standard" and hidden_lr_ratio == 1.0:
        return [{"params": [p for _, p in params if id(p) in decays], "lr": lr, "weight_decay": weight_decay, "eps": eps},
                {"params": [p for _, p in params if id(p) not in decays], "lr": lr, "weight_decay": 0.0, "eps": eps}]
    if not isinstance(model, Parametrized):
        raise TypeError(f"hidden_lr_ratio={hidden_lr_ratio} needs each parameter's role: a Parametrized model "
                        f"(components.TransformerLM), not {type(model).__name__}")
    roles = model.weight_roles()
    groups: dict[tuple[str, bool], dict] = {}
    for name, p in params:
        role, decay = roles[name], id(p) in decays
        group = groups.get((role, decay))
        if group is None:
            ratio = hidden_lr_ratio if role in ("hidden", "output") else 1.0
            group = groups[(role, decay)] = {
                "params": [], "lr": lr * ratio * mult.lr(role), "eps": eps * mult.eps(role),
                "weight_decay": weight_decay * mult.weight_decay(role) if decay else 0.0, "role": role}
        group["params"].append(p)
    return list(groups.values())
