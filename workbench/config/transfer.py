"""``tune: {at: smallest}``: the grid runs at each variant's smallest size only; every larger size of the variant
trains its verdict seeds at the optimum the smallest size found.

That is sound only where the parametrization makes the optimum stable across what the sizes change
(docs/parametrization.md): μP (``mup``) across width (``dim``, and the head count, head size and FFN width that
follow it; Yang et al. 2022), CompleteP (``completep``) across width and depth (``n_layers``; Dey et al. 2025).
Sizes that change anything else (``train.seq_len``, the vocabulary, ...), or a ``standard`` variant, are refused
with one line naming ``tune.at``. ``train.steps`` set per size by a ``budget:`` is no change of the size: the
budget holds every size to the same rule.

The smallest size of a variant is its cell with the fewest FLOPs/token (ties: the first listed; for a sweep of
``model.dim`` or ``model.n_layers``, its smallest value). Each larger cell declares one run group per point of the
smallest cell's grid (its ``GridPoint.source`` naming that cell), trained only where that optimum lands.
"""

from __future__ import annotations

import dataclasses

from .errors import ConfigError
from .experiment import Experiment, Variant
from .specs import flatten

WIDTH = ("model.dim", "model.n_heads", "model.n_kv_heads", "model.head_dim", "model.ffn_hidden_dim",
         "model.ffn_dim_multiplier", "model.multiple_of")
DEPTH = ("model.n_layers",)
BASES = ("model.base_dim", "model.base_layers")  # resolved to the same base at every size (base_shape.py)
TRANSFERS = {"mup": "width", "completep": "width and depth"}  # what each parametrization transfers across


def _cells(exp: Experiment) -> dict[str, Variant]:
    """Each cell at its own configured value of the tuned key (its untuned form), in experiment order."""
    out: dict[str, Variant] = {}
    for v in exp.variants.values():
        out.setdefault(v.cell, v.untuned())
    return out


def smallest_cells(exp: Experiment) -> dict[str, str]:
    """Each arch's smallest cell: the fewest FLOPs/token, ties to the first listed."""
    best: dict[str, tuple[int, int, str]] = {}
    for i, (cell, v) in enumerate(_cells(exp).items()):
        rank = (v.sizes()["flops_per_token"], i, cell)
        best[v.arch] = min(best.get(v.arch, rank), rank)
    return {arch: rank[2] for arch, rank in best.items()}


def _changed(small: Variant, large: Variant, ignore: set[str]) -> list[str]:
    """Dotted keys whose value differs between two cells' configs, in config order."""
    a, b = flatten(small.to_dict()), flatten(large.to_dict())
    return [k for k in dict.fromkeys(list(a) + list(b)) if k not in ignore and a.get(k) != b.get(k)]


def check_transfer(exp: Experiment) -> None:
    """ConfigError naming ``tune.at`` unless every larger size of every variant changes only what its
    parametrization transfers the optimum across."""
    at = [o for k, o in exp.origins.items() if k == "tune.at"]
    where = (at[-1][0] if at else str(exp.path), "tune.at")
    if any(v.size is None for v in exp.variants.values()):
        raise ConfigError(*where, "smallest, but the experiment has no sizes: there is no larger size to transfer "
                          "the optimum to", "tune.at: every, or sizes: [...] / a sweep: of model.dim or model.n_layers")
    ignore = set(BASES) | {exp.tune.key} | ({"train.steps"} if exp.budget is not None else set())
    found = _cells(exp)
    for arch, small in smallest_cells(exp).items():
        for cell, v in found.items():
            if v.arch != arch or cell == small:
                continue
            changed = _changed(found[small], v, ignore)
            scheme = v.model.get("parametrization", "standard")
            other = [k for k in changed if k not in WIDTH + DEPTH]
            if other:
                raise ConfigError(*where, f"smallest, but size '{v.size}' changes {other[0]} from the smallest size "
                                  f"'{found[small].size}', and no parametrization transfers the optimum across it",
                                  "tune.at: every, or sizes that change only the width (mup, completep) or the depth "
                                  "(model.n_layers: completep)")
            depth = [k for k in changed if k in DEPTH]
            if depth and scheme != "completep":
                raise ConfigError(*where, f"smallest, but size '{v.size}' changes {depth[0]}, and variant '{arch}' is under "
                                  f"parametrization {scheme}, whose optimum moves with depth",
                                  "model.parametrization: completep (transfers across depth), or tune.at: every")
            width = [k for k in changed if k in WIDTH]
            if width and scheme not in TRANSFERS:
                raise ConfigError(*where, f"smallest, but size '{v.size}' changes {width[0]}, and variant '{arch}' is under "
                                  f"parametrization {scheme}, whose optimum moves with width",
                                  "model.parametrization: mup or completep (transfer across width), or tune.at: every")


def with_transfers(exp: Experiment) -> dict[str, Variant]:
    """The run groups with every larger cell's own grid replaced by one transfer point per point of its arch's
    smallest cell's grid (same values and steps, ``source`` that cell), in the same place in the order."""
    smallest = smallest_cells(exp)
    grids: dict[str, list] = {}
    for v in exp.variants.values():
        grids.setdefault(v.cell, []).append(v.point)
    out: dict[str, Variant] = {}
    placed: set[str] = set()
    for name, v in exp.variants.items():
        source = smallest[v.arch]
        if v.cell == source:
            out[name] = v
        elif v.cell not in placed:  # the cell's first run group: its transfer points go here
            placed.add(v.cell)
            own = v.untuned()
            for point in grids[source]:
                moved = dataclasses.replace(point, base=v.point.base, source=source)
                group = own.at(moved, exp.tune.point_name(v.cell, moved.value))
                group.origins = {**v.origins, exp.tune.key: (exp.origins.get("tune.at", (str(exp.path),))[0],
                                                            f"tune.at: smallest (the optimum of {source})")}
                out[group.name] = group
    return out
