"""How a run group is named: the one owner of ``<variant>[~<control>][@<size>][@<key>=<value>]``.

A variant of the experiment file (``arch``) at one size of a scaling sweep is a **cell**, ``arch@size``
(``arch`` without sizes): what a verdict compares. A tuned experiment trains each cell at every point of its
grid, one run group per point, ``<cell>@<leaf>=<value>`` (``rmsnorm@d64@lr=0.003``). A control of
``controls:`` is an arch of its own, named after the variant it copies: ``rmsnorm~aa`` (so ``rmsnorm~aa@d64``,
``rmsnorm~aa@lr=0.003``). ``@``, ``=`` and ``~`` are never in a variant or size name, so the names split
unambiguously and a control never takes a variant's name.
"""

from __future__ import annotations

from typing import Any

SEP = "@"
CONTROL_SEP = "~"


def cell_name(arch: str, size: str | None) -> str:
    """``arch`` at ``size``: ``llama@s64``, or ``llama`` without sizes."""
    return arch if size is None else f"{arch}{SEP}{size}"


def control_arch(arch: str, control: str) -> str:
    """The arch of ``arch``'s ``control`` twin: ``rmsnorm~aa``."""
    return f"{arch}{CONTROL_SEP}{control}"


def point_name(cell: str, leaf: str, value: float) -> str:
    """The run group of ``cell`` at ``value`` of the tuned key ``leaf``: ``rmsnorm@lr=0.003``."""
    return f"{cell}{SEP}{leaf}={value:.4g}"


def entry_cell(entry: Any) -> str | None:
    """The cell of a registered run group (a results.json entry or a variant.json): from its ``arch`` and
    ``size``; None when it names no arch."""
    if not isinstance(entry, dict) or not entry.get("arch"):
        return None
    size = entry.get("size")
    return cell_name(str(entry["arch"]), None if size is None else str(size))


def compared(entry: Any) -> bool:
    """Whether a results.json entry is a run group the verdicts compare: an untuned one, or the grid point a
    tuned variant's verdicts run at (it carries ``tuning``); the other grid points only tuned it."""
    return isinstance(entry, dict) and ("tuned" not in entry or "tuning" in entry)
