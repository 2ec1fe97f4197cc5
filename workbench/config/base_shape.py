"""The base shape of a sized μP / CompleteP variant: the width (and depth) its hyperparameters refer to.

Under ``model.parametrization: mup`` or ``completep`` a model scales its init, learning rates and multipliers
by m_d = dim / base_dim (and, under completep, m_L = n_layers / base_layers; docs/parametrization.md). In an
experiment that trains a variant at several sizes (``sizes:`` or a ``sweep:``), a base it leaves unset (None)
is the variant's smallest size: ``base_dim`` its smallest ``dim``, ``base_layers`` its smallest ``n_layers``
(smallest by that key's value), so every size of the variant shares one base and the smallest trains exactly as
under ``standard``. Where ``base_dim`` is resolved so, an unset ``base_head_dim`` is the head_dim of that
smallest-width size: the attention scale then refers to the base size's own heads, whether the sizes grow
head_dim (heads kept) or the number of heads (head_dim kept, as LLaMA families do). Without sizes an unset
base stays None: the config is its own base. The resolved value is written into the variant's model, so
experiment.yaml, ``show`` and results.json all store it.
"""

from __future__ import annotations

from .experiment import Experiment, Origins

# base key -> (the shape key it refers to, the parametrizations that read it)
RESOLVED = "unset: the smallest size's"  # how an origin says the base was resolved here
BASES = {"base_dim": ("dim", ("mup", "completep")), "base_layers": ("n_layers", ("completep",))}


def resolved_bases(exp: Experiment) -> dict[str, dict[str, int]]:
    """Per run group, the base keys to fill in (``{"base_dim": 64, "base_head_dim": 16}``); only for sized
    variants whose parametrization reads a base they leave unset."""
    smallest: dict[tuple[str, str], int] = {}  # (arch, shape key) -> its smallest value over the arch's sizes
    base_heads: dict[str, tuple[int, int]] = {}  # arch -> (smallest dim, the head_dim of a size that has it)
    for v in exp.variants.values():
        if v.size is not None:
            for shape, _ in BASES.values():
                value = v.model.get(shape)
                if isinstance(value, int):
                    key = (v.arch, shape)
                    smallest[key] = min(smallest.get(key, value), value)
            head_dim, dim = _head_dim(v.model), v.model.get("dim")
            if head_dim is not None and (v.arch not in base_heads or dim < base_heads[v.arch][0]):
                base_heads[v.arch] = (dim, head_dim)
    out: dict[str, dict[str, int]] = {}
    for name, v in exp.variants.items():
        if v.size is None:
            continue
        fill = {base: smallest[(v.arch, shape)] for base, (shape, readers) in BASES.items()
                if v.model.get("parametrization") in readers and v.model.get(base) is None
                and (v.arch, shape) in smallest}
        if "base_dim" in fill and v.model.get("base_head_dim") is None and v.arch in base_heads:
            fill["base_head_dim"] = base_heads[v.arch][1]
        if fill:
            out[name] = fill
    return out


def _head_dim(model: dict) -> int | None:
    """A size's head_dim: set by hand, or dim / n_heads (components.config's rule); None where unknown."""
    if isinstance(model.get("head_dim"), int):
        return model["head_dim"]
    dim, heads = model.get("dim"), model.get("n_heads")
    return dim // heads if isinstance(dim, int) and isinstance(heads, int) and heads > 0 else None


def base_origins(exp: Experiment, fill: dict[str, int]) -> Origins:
    """Where a filled-in base came from, for errors that blame it: the file that lists the sizes."""
    sizes = [o for k, o in exp.origins.items() if k == "sizes" or k.startswith("sizes.") or k.startswith("sweep.")]
    source = sizes[-1][0] if sizes else str(exp.path)
    shapes = {**{base: shape for base, (shape, _) in BASES.items()}, "base_head_dim": "head_dim"}
    return {f"model.{base}": (source, f"model.{base} ({RESOLVED} {shapes[base]})") for base in fill}
