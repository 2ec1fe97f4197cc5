"""The base shape of a sized μP / CompleteP variant: the width (and depth) its hyperparameters refer to.

Under ``model.parametrization: mup`` or ``completep`` a model scales its init, learning rates and multipliers
by m_d = dim / base_dim (and, under completep, m_L = n_layers / base_layers; docs/parametrization.md). In an
experiment that trains a variant at several sizes (``sizes:`` or a ``sweep:``), a base it leaves unset (None)
is the variant's smallest size: ``base_dim`` its smallest ``dim``, ``base_layers`` its smallest ``n_layers``
(smallest by that key's value), so every size of the variant shares one base and the smallest trains exactly as
under ``standard``. Without sizes an unset base stays None: the config is its own base. The resolved value is
written into the variant's model, so experiment.yaml, ``show`` and results.json all store it.
"""

from __future__ import annotations

from .experiment import Experiment, Origins

# base key -> (the shape key it refers to, the parametrizations that read it)
RESOLVED = "unset: the smallest size's"  # how an origin says the base was resolved here
BASES = {"base_dim": ("dim", ("mup", "completep")), "base_layers": ("n_layers", ("completep",))}


def resolved_bases(exp: Experiment) -> dict[str, dict[str, int]]:
    """Per run group, the base keys to fill in (``{"base_dim": 64}``); only for sized variants whose
    parametrization reads a base they leave unset."""
    smallest: dict[tuple[str, str], int] = {}  # (arch, shape key) -> its smallest value over the arch's sizes
    for v in exp.variants.values():
        if v.size is not None:
            for shape, _ in BASES.values():
                value = v.model.get(shape)
                if isinstance(value, int):
                    key = (v.arch, shape)
                    smallest[key] = min(smallest.get(key, value), value)
    out: dict[str, dict[str, int]] = {}
    for name, v in exp.variants.items():
        if v.size is None:
            continue
        fill = {base: smallest[(v.arch, shape)] for base, (shape, readers) in BASES.items()
                if v.model.get("parametrization") in readers and v.model.get(base) is None
                and (v.arch, shape) in smallest}
        if fill:
            out[name] = fill
    return out


def base_origins(exp: Experiment, fill: dict[str, int]) -> Origins:
    """Where a filled-in base came from, for errors that blame it: the file that lists the sizes."""
    sizes = [o for k, o in exp.origins.items() if k == "sizes" or k.startswith("sizes.") or k.startswith("sweep.")]
    source = sizes[-1][0] if sizes else str(exp.path)
    return {f"model.{base}": (source, f"model.{base} ({RESOLVED} {BASES[base][0]})") for base in fill}
