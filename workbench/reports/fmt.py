"""Number and text formatting shared by the Markdown and HTML renderers."""

from __future__ import annotations

import re

import numpy as np

from .analysis.estimable import not_estimable
from .analysis.stats import Summary
from .analysis.multipliers import Multiplier
from .analysis.verdicts import NOT_LEARNED, Verdict

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


def level(value: float) -> str:
    """A confidence level with its error rate to two significant digits: '95%', '98.3%', '99.966%'."""
    rate = np.format_float_positional((1.0 - value) * 100, precision=2, unique=False, fractional=False, trim="-")
    decimals = len(rate.split(".")[1]) if "." in rate else 0
    return f"{value * 100:.{decimals}f}%"


def interval(mean: float | None, low: float | None, high: float | None, at: float | None = None,
             digits: int = LOSS_DIGITS) -> str:
    """'+0.0123 [-0.0050, +0.0296] at 97.5%'; '+0.0123' without an interval; '—' without a mean."""
    if mean is None:
        return DASH
    if low is None or high is None:
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]" + (f" at {level(at)}" if at else "")


def delta(c: Verdict) -> str:
    """A comparison's Δ: '+0.0123 [-0.0050, +0.0296] at 97.5%'; '+0.4000 (not estimable at n = 2)' where the data
    cannot bound it (analysis/estimable.py); '+0.0280 (no interval: not learned yet)' where no test was taken; '—'
    without a mean."""
    if c.mean is None:
        return DASH
    if c.verdict == NOT_LEARNED:  # no test was taken: the point estimate only (analysis/learned.py)
        return f"{c.mean:+.{LOSS_DIGITS}f} (no interval: {NOT_LEARNED})"
    if not c.estimable:
        return f"{c.mean:+.{LOSS_DIGITS}f} ({not_estimable(c.n)})"
    return interval(c.mean, c.low, c.high, c.level)


def spread(c: Verdict) -> str:
    """The std of one paired difference the verdict used, its df and where it comes from: '0.0312 (12 df, pooled)';
    '—' without an estimate."""
    if c.df is None or c.diff_std is None:
        return DASH
    return f"{number(c.diff_std)} ({c.df} df, {c.variance})"


def multiplier(m: Multiplier | None) -> str:
    """'1.30x [1.10, 1.50]', '1.30x (not estimable at n = 2)', with ' (extrapolated)' when any seed's was; '—'
    without one."""
    if m is None or m.mean is None:
        return DASH
    spread = f" [{m.low:.2f}, {m.high:.2f}]" if m.estimable else f" ({not_estimable(len(m.per_seed) or None)})"
    return f"{m.mean:.2f}x{spread}" + (" (extrapolated)" if m.extrapolated else "")


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
