"""Number and text formatting shared by the Markdown and HTML renderers."""

from __future__ import annotations

import re

from .stats import PairedDiff, Summary

DASH = "—"
LOSS_DIGITS = 4
_COUNT_UNITS = ("", "K", "M", "B", "T")
_FLOP_UNITS = ("", "K", "M", "G", "T", "P", "E")


def human(value: float | None, units: tuple[str, ...] = _COUNT_UNITS) -> str:
    """3 significant digits with a unit suffix: 1234567 -> '1.23M'; None -> '—'."""
    if value is None:
        return DASH
    scaled, i = float(value), 0
    while i < len(units) - 1 and abs(float(f"{scaled:.3g}")) >= 1000:
        scaled, i = scaled / 1000.0, i + 1
    digits = f"{scaled:.3g}"
    if "e" in digits:  # beyond the largest unit
        digits = f"{scaled:.3e}"
    return f"{digits}{units[i]}"


def human_flops(value: float | None) -> str:
    return human(value, _FLOP_UNITS)


def memory(mb: float | None) -> str:
    if mb is None:
        return DASH
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def number(value: float | None, digits: int = LOSS_DIGITS) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def mean_std(s: Summary, digits: int = LOSS_DIGITS) -> str:
    """'3.2100 ± 0.0123'; std '—' with a single seed; '—' with none."""
    if s.mean is None:
        return DASH
    return f"{s.mean:.{digits}f} ± {number(s.std, digits)}"


def delta(d: PairedDiff | None, digits: int = LOSS_DIGITS) -> str:
    """'+0.0123 [-0.0050, +0.0296] (n=3)', '+0.0123 (n=1, no CI)', or '—'."""
    if d is None or d.mean is None:
        return DASH
    if d.low is None or d.high is None:
        return f"{d.mean:+.{digits}f} (n={d.n}, no CI)"
    return f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}] (n={d.n})"


def mean_of(s: Summary, show=human) -> str:
    return show(s.mean)


_MD_SPECIAL = re.compile(r"([\\`*<>|]|\](?=\())")  # '](' would start a link


def md(text: object) -> str:
    """Text safe inside a Markdown table cell: specials backslash-escaped, newlines flattened."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", str(text)))


def md_code(text: object) -> str:
    """An inline code span that survives backticks in its content."""
    text = " ".join(str(text).split())
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
