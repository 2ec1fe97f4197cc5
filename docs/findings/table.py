"""Print docs/findings.md's per-scale tables from the sweeps' results.json (run docs/findings/run_all.sh first).

Usage: python docs/findings/table.py [runs/findings]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from workbench.reports.analysis.scale_verdicts import crossing  # noqa: E402  (the repository's, run from anywhere)
from workbench.reports.analysis.verdicts import NOT_LEARNED  # noqa: E402

SWEEPS = ("ladder", "ffn_horizon", "placement_depth", "norm_width", "positions_width")


def _interval(row: dict) -> str:
    if row["mean"] is None:
        return "n/a"
    if row["verdict"] == NOT_LEARNED:
        return f"{row['mean']:+.3f} (no interval: {NOT_LEARNED})"
    if row["low"] is None:
        return f"{row['mean']:+.3f} (not estimable at n = {row.get('n')})"
    return f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def _noise(row: dict) -> str:
    """The degrees of freedom of the variance behind the verdict and where it comes from (pooled, size, cell)."""
    return "n/a" if row.get("df") is None else f"{row['df']} df, {row['variance']}"


def _multiplier(m: dict | None) -> str:
    if not m:
        return "n/a"
    text = f"{m['mean']:.2f}x"
    if m.get("low") is not None:
        text += f" [{m['low']:.2f}, {m['high']:.2f}]"
    else:
        text += f" (not estimable at n = {m.get('n')})"
    return text + (" (extrapolated)" if m.get("extrapolated") else "")


def table(results: dict) -> str:
    """One markdown table: every compared arch at every scale, then each arch's crossing note."""
    lines = ["| variant | scale | training FLOPs | Δ val loss [interval] | noise (df, source) | verdict | compute multiplier [interval] |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for arch, summary in ((results.get("scale") or {}).get("by_arch") or {}).items():
        if all(row["mean"] is None for row in summary["by_size"]):  # not trained (left out by --variant)
            continue
        for row in summary["by_size"]:
            compute = f"{row['compute']:.2e}" if row["compute"] else "n/a"
            lines.append(f"| {arch} | {row['size']} | {compute} | {_interval(row)} | {_noise(row)} | {row['verdict']} | "
                         f"{_multiplier(row['multiplier'])} |")
        # Recomputed from the stored rows, so a results.json from before the half-decade limit on extrapolation
        # (analysis/scaling.py EXTRAPOLATE) prints no crossing further out as digits.
        point, note = crossing(summary["by_size"])
        notes.append(f"- {arch}: {note}" + (f" (at {point['compute']:.2e} FLOPs)" if point else ""))
    return "\n".join(lines + [""] + notes)


def main(root: str = "runs/findings") -> None:
    for name in SWEEPS:
        path = Path(root) / name / "results.json"
        if path.exists():
            print(f"### {name}\n\n{table(json.loads(path.read_text()))}\n")
        else:
            print(f"### {name}\n\n(not run: {path} is missing)\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
