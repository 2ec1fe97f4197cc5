"""tune: train every variant over a grid of one numeric key and compare each at its own optimum.

    tune: {key: train.lr, values: [1.0e-3, 3.0e-3, 1.0e-2]}     # the grid as written
    tune: {key: train.lr, multipliers: [0.25, 0.5, 1, 2, 4]}     # multiples of each variant's own value
    tune: {}                                                     # the default: x0.25 .. x4 in x2 steps of train.lr

Each variant (at each size) becomes one run group per grid point, named ``<variant>@<leaf>=<value>``
(``rmsnorm@lr=0.003``, ``rmsnorm@d64@lr=0.003``), plus ``extend`` points declared ahead on each side
(the edge steps repeated), which the runner trains only while the optimum sits on that edge
(``reports.analysis.tuning``). ``seeds`` tuning seeds (the experiment's first) train every point; the
verdict seeds then run at each variant's optimum, where the tuning run counts as one of them.

``at: smallest`` (with ``sizes:`` or a ``sweep:`` of the model's width or depth) runs the grid at each variant's
smallest size only; every larger size declares one run group per point of that grid, ``source`` naming the cell
it takes the optimum from, and trains its verdict seeds at the one the smallest size chose (``transfer.py``).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..run_groups import point_name
from .errors import ConfigError, did_you_mean
from .schema import VariantSchema, keys_at

DEFAULT_KEY = "train.lr"
DEFAULT_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)  # 5 points in x2 steps around the configured value
MAX_EXTEND = 4  # extension points per side at most
MAX_POINTS = 32
AT = ("every", "smallest")  # tune.at: the grid at every size, or at the smallest only (its optimum transferred)
SECTIONS = ("model", "train")


@dataclass(frozen=True)
class GridPoint:
    """Where one run group sits on its variant's grid: the tuned key, its value there, the variant's
    configured value, ``step`` (0 on the configured grid; -k/+k the k-th extension below/above), and ``source``:
    None on the cell's own grid, or the cell whose grid point it mirrors (``at: smallest``): it trains only if
    that cell's optimum lands there, at the verdict seeds."""

    key: str
    value: float
    base: float
    step: int
    source: str | None = None

    @property
    def tuning(self) -> bool:
        """Whether it is a point of its cell's own grid, trained at the tuning seeds (else a transfer point)."""
        return self.source is None

    def as_json(self) -> dict:
        return {"key": self.key, "value": self.value, "step": self.step,
                **({"from": self.source} if self.source is not None else {})}


@dataclass(frozen=True)
class Tune:
    """The ``tune:`` section, checked."""

    key: str = DEFAULT_KEY
    values: tuple[float, ...] | None = None
    multipliers: tuple[float, ...] | None = None
    seeds: int = 1
    extend: int = 2
    at: str = "every"  # one of AT

    @property
    def leaf(self) -> str:
        return self.key.partition(".")[2]

    def grid(self, base: float) -> list[float]:
        """The configured grid for a variant whose own value is ``base``, ascending."""
        raw = self.values if self.values is not None else [base * m for m in self.multipliers]
        return sorted(_round(v) for v in raw)

    def points(self, base: float) -> list[GridPoint]:
        """The configured grid and its declared extensions, ascending: each edge's step repeated outwards."""
        grid = self.grid(base)
        low = [_round(grid[0] * (grid[0] / grid[1]) ** k) for k in range(self.extend, 0, -1)]
        high = [_round(grid[-1] * (grid[-1] / grid[-2]) ** k) for k in range(1, self.extend + 1)]
        steps = list(range(-self.extend, 0)) + [0] * len(grid) + list(range(1, self.extend + 1))
        return [GridPoint(self.key, v, base, s) for v, s in zip(low + grid + high, steps)]

    def point_name(self, cell: str, value: float) -> str:
        """The run group of ``cell`` (``arch`` or ``arch@size``) at ``value``: ``rmsnorm@lr=0.003``."""
        return point_name(cell, self.leaf, value)

    def as_dict(self) -> dict:
        return {"key": self.key, "values": list(self.values) if self.values is not None else None,
                "multipliers": list(self.multipliers) if self.values is None else None,
                "seeds": self.seeds, "extend": self.extend, "at": self.at}


def _round(value: float) -> float:
    """A grid value at 6 significant digits: 0.003 * 3 is 0.009, not 0.009000000000000001."""
    return float(f"{value:.6g}")


def tunable_keys() -> list[str]:
    """The keys a grid may run over: the float-typed keys of model: and train:."""
    out = []
    for section in SECTIONS:
        schema = typing.get_type_hints(VariantSchema)[section]
        hints = typing.get_type_hints(schema)
        out += [f"{section}.{f.name}" for f in dataclasses.fields(schema) if hints[f.name] is float]
    return out


def parse_tune(spec: Any, source: str) -> Tune | None:
    """``tune:`` as a Tune (None when absent); a one-line ConfigError naming ``tune.KEY`` on any problem."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(source, "tune", f"expected a mapping, got {spec!r}", "{key: train.lr, values: [...]} or {multipliers: [...]}")
    key = spec.get("key") or DEFAULT_KEY
    keys = tunable_keys()
    if key not in keys:
        known = str(key).partition(".")[2] in (keys_at(VariantSchema, str(key).partition(".")[0]) or [])
        why = "is not a float key" if known else f"is not a key{did_you_mean(str(key), keys)}"
        raise ConfigError(source, "tune.key", f"cannot tune {key!r}: it {why}; a grid runs over one float key of "
                          f"model: or train:", ", ".join(keys))
    values, multipliers = spec.get("values"), spec.get("multipliers")
    if values is not None and multipliers is not None:
        raise ConfigError(source, "tune.values", "values and multipliers both given: a grid is one or the other",
                          "tune.values: [...] or tune.multipliers: [...]")
    for name, given in (("values", values), ("multipliers", multipliers)):
        if given is not None:
            _check_grid(source, f"tune.{name}", given)
    seeds, extend, at = spec.get("seeds", 1), spec.get("extend", 2), spec.get("at") or "every"
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(source, "tune.seeds", f"invalid value {seeds!r}", "an integer >= 1 (tuning seeds per grid point)")
    if isinstance(extend, bool) or not isinstance(extend, int) or not 0 <= extend <= MAX_EXTEND:
        raise ConfigError(source, "tune.extend", f"invalid value {extend!r}", f"an integer in [0, {MAX_EXTEND}] (extension points per side)")
    if at not in AT:
        raise ConfigError(source, "tune.at", f"invalid value {at!r}{did_you_mean(str(at), AT)}",
                          "every (a grid at every size) or smallest (the grid at the smallest size, its optimum transferred)")
    if values is None and multipliers is None:
        multipliers = DEFAULT_MULTIPLIERS
    return Tune(key, tuple(map(float, values)) if values is not None else None,
                tuple(map(float, multipliers)) if values is None else None, seeds, extend, at)


def _check_grid(source: str, key: str, given: Any) -> None:
    allowed = f"3 to {MAX_POINTS} distinct positive numbers, e.g. [1.0e-3, 3.0e-3, 1.0e-2]"
    if not isinstance(given, (list, tuple)) or not 3 <= len(given) <= MAX_POINTS:
        raise ConfigError(source, key, f"expected a list of at least 3 values, got {given!r}", allowed)
    for v in given:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ConfigError(source, key, f"invalid value {v!r}: the optimum is fitted in log(value)", allowed)
    rounded = [f"{_round(v):.4g}" for v in given]
    if len(set(rounded)) != len(rounded):
        raise ConfigError(source, key, f"repeated value in {list(given)!r} (at 4 significant digits)", allowed)
