"""Length extrapolation: val loss at each evaluated length, per variant, as a table and a plot.

Lengths a variant cannot evaluate (learned positions past their table) are "not applicable" with
the reason the run recorded, never a crash and never a missing row.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import fmt
from .doc import Block, Heading, Image, Para, Table, text
from .load import COMPLETED, Variant
from .plots import DPI, Plot, _png, colour, label, linestyle
from .analysis.stats import summarize

NAME = "val_loss_vs_length"
TITLE = "Validation loss vs evaluation length"


def _lengths(order: list[Variant]) -> list[int]:
    return sorted({k for v in order for r in v.runs for k in r.length_eval})


def length_table(order: list[Variant]) -> dict[str, dict[int, tuple[float | None, str | None]]]:
    """variant -> length -> (mean loss over completed seeds, or None with the reason)."""
    out = {}
    for v in order:
        done = [r for r in v.runs if r.status == COMPLETED]
        row = {}
        for length in _lengths(order):
            values = [r.length_eval.get(length) for r in done if length in r.length_eval]
            mean = summarize(values).mean
            note = None
            if mean is None:
                note = next((r.length_eval_notes[length] for r in done if length in r.length_eval_notes),
                            "no completed run" if not done else "not evaluated")
            row[length] = (mean, note)
        out[v.name] = row
    return out


def _train_len(v: Variant) -> int | None:
    train = v.config.get("train") if isinstance(v.config.get("train"), dict) else {}
    return train.get("seq_len") if isinstance(train.get("seq_len"), int) else None


def length_plot(order: list[Variant], table) -> bytes | None:
    """Left: loss vs length per variant. Right: the same minus the variant's loss at its training length,
    so the extrapolation shapes compare whatever the absolute losses. log2 x axes, training length dotted."""
    fig = Figure(figsize=(12.0, 5.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    absolute, relative = fig.subplots(1, 2)
    drawn = False
    for v in order:
        points = [(length, mean) for length, (mean, _) in table[v.name].items() if mean is not None]
        if not points:
            continue
        x, y = np.array(points, dtype=np.float64).T
        skipped = [length for length, (mean, _) in table[v.name].items() if mean is None]
        suffix = f" (n/a beyond {int(x.max())} tokens)" if skipped else ""
        style = dict(color=colour(v.index), ls=linestyle(v.index), marker="o", lw=2)
        absolute.plot(x, y, label=label(v.name + suffix), **style)
        train_len = _train_len(v)
        at_train = table[v.name].get(train_len, (None, None))[0] if train_len else None
        if at_train is not None:
            relative.plot(x, y - at_train, **style)
        drawn = True
    if not drawn:
        return None
    lengths = _lengths(order)
    for ax in (absolute, relative):
        ax.grid(True, which="major", alpha=0.35)
        for seq in sorted({s for s in (_train_len(v) for v in order) if s}):
            ax.axvline(seq, color="grey", ls=":", lw=1.2)
            ax.annotate(f"train length {seq}", (seq, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize="small", color="dimgrey")
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.set_xlabel("evaluation length (tokens, log scale)")
    relative.axhline(0.0, color="grey", lw=1)
    absolute.set_title("Validation loss")
    absolute.set_ylabel("validation loss (nats / token)")
    relative.set_title("Change from the loss at the training length")
    relative.set_ylabel("Δ validation loss (nats / token)")
    fig.suptitle(TITLE)
    fig.legend(fontsize="small", loc="outside right upper")
    return _png(fig)


def lengths_section(order: list[Variant]) -> tuple[list[Block], Plot | None]:
    """The section and its plot, or ([], None) when no run evaluated other lengths."""
    lengths = _lengths(order)
    if not lengths:
        return [], None
    table = length_table(order)
    rows = []
    for v in order:
        cells = [fmt.number(mean) if mean is not None else note for mean, note in (table[v.name][n] for n in lengths)]
        rows.append([v.name, fmt.DASH if _train_len(v) is None else str(_train_len(v))] + cells)
    headers = ["Variant", "Trained at"] + [f"{n} tokens" for n in lengths]
    png = length_plot(order, table)
    plot = Plot(NAME, TITLE, png, None if png else "no completed run has a loss at any length")
    blocks: list[Block] = [
        Heading(2, "Length extrapolation"),
        Table(headers, rows, right=set(range(1, len(headers)))),
        Para([text("Validation loss (nats/token, mean over completed seeds) with the model run on windows of each "
                   "length. Every length scores the same validation tokens (one span cut into windows), so a "
                   "change with length comes from context alone: loss falls while longer context helps and rises "
                   "where the position scheme stops generalising past the training length. The plot's right panel "
                   "subtracts each variant's loss at its training length, so the shapes compare directly.")]),
        Heading(3, TITLE),
        Image(TITLE, f"plots/{NAME}.png", png) if png else Para([text(f"Skipped: {plot.skipped}.")]),
    ]
    return blocks, plot
