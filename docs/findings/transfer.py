"""docs/findings.md's learning-rate transfer tables and figure, from tuned sweeps' results.json.

For each variant (arch) and size: the final val loss of the tuning seed at every grid point, the best point,
and how many x2 grid steps it sits from the smallest size's best. The figure has one panel per arch: loss
against learning rate, one line per size, the best point marked.

Usage: python docs/findings/transfer.py OUT.png RESULTS.json [RESULTS.json ...]
(e.g. runs/findings/transfer_width/results.json, one folder per run of experiments/transfer_width.yaml)
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def curves(paths: list[str]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{arch: {size: [(lr, final val loss of the first completed seed), ...] ascending}} in file order."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for path in paths:
        for group in json.loads(Path(path).read_text())["variants"].values():
            done = [r for r in group.get("runs", []) if r["status"] == "completed"]
            if group.get("tuned") is None or not done:
                continue
            out.setdefault(group["arch"], {}).setdefault(group["size"], []).append(
                (group["tuned"]["value"], done[0]["final_val_loss"]))
    for sizes in out.values():
        for points in sizes.values():
            points.sort()
    return out


def table(data: dict[str, dict[str, list[tuple[float, float]]]]) -> str:
    rates = sorted({lr for sizes in data.values() for points in sizes.values() for lr, _ in points})
    lines = ["| variant | size | " + " | ".join(f"{lr:.3g}" for lr in rates) + " | best | steps from the smallest size's best |",
             "|---|---|" + "---|" * (len(rates) + 2)]
    for arch, sizes in data.items():
        first = None
        for size, points in sizes.items():
            loss = dict(points)
            best = min(points, key=lambda p: p[1])[0]
            first = best if first is None else first
            steps = round(math.log2(best / first))
            cells = [("**%.3f**" if lr == best else "%.3f") % loss[lr] if lr in loss else "" for lr in rates]
            lines.append(f"| {arch} | {size} | " + " | ".join(cells) + f" | {best:.3g} | {steps:+d} |")
    return "\n".join(lines)


def figure(data: dict[str, dict[str, list[tuple[float, float]]]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 3.8), sharey=True, squeeze=False)
    for ax, (arch, sizes) in zip(axes[0], data.items()):
        for size, points in sizes.items():
            lrs, losses = zip(*points)
            line, = ax.plot(lrs, losses, marker="o", label=size)
            best = min(points, key=lambda p: p[1])
            ax.plot(*best, marker="*", markersize=16, color=line.get_color())
        ax.set_xscale("log", base=2)
        rates = sorted({lr for points in sizes.values() for lr, _ in points})
        ax.set_xticks(rates, [f"{lr:.3g}" for lr in rates], rotation=30)
        ax.minorticks_off()
        ax.set_xlabel("train.lr (the base learning rate)")
        ax.set_title(f"{arch}: final val loss vs learning rate (star: best)")
        ax.grid(alpha=0.3)
        ax.legend(title="size")
    axes[0][0].set_ylabel("final val loss (nats)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    data = curves(sys.argv[2:])
    print(table(data))
    figure(data, sys.argv[1])
