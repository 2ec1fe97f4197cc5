"""The ``coordcheck`` subcommand's arguments and entry point. Importing this module is cheap: torch and
matplotlib load only when the command runs, and Lightning never does.

The flags are read as text and checked here, so a bad value is one ConfigError line (exit 2) naming the
flag and what it allows, as a bad config key is, rather than argparse's usage block.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WIDTHS = (64, 128, 256, 512)
DEFAULT_DEPTHS = (2, 4, 8, 16)
# 3, not nanoGPT-mup's 10: standard's logits outgrow the widths in the first steps, then the loss pulls every
# width's logits to the data's scale (tiny preset: 6.09x at step 3, 2.07x at step 10; docs/coordcheck.md).
DEFAULT_STEPS = 3
DEFAULT_SEEDS = 2

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    check = sub.add_parser(
        "coordcheck", help="train the baseline a few steps at several widths (or depths) and show whether each module "
                           "kind's mean |activation| stays flat (mup, completep) or grows (standard); trains no run",
        description="Coordinate check (Tensor Programs V; nanoGPT-mup): the baseline variant's config at each "
                    "model.dim (n_heads kept) or model.n_layers, K AdamW steps at a constant train.lr on the "
                    "experiment's training data, then the mean |activation| of embedding, attention, ffn, block "
                    "and logits on one fixed validation batch; a table, a plot, and a verdict per kind.")
    check.add_argument("experiment", type=Path)
    check.add_argument("overrides", nargs="*", metavar="key=value")
    check.add_argument("--widths", nargs="*", metavar="DIM",
                       help=f"model.dim values (default {' '.join(map(str, DEFAULT_WIDTHS))}; multiples of model.n_heads)")
    check.add_argument("--depths", nargs="*", metavar="LAYERS",
                       help=f"model.n_layers values instead of widths (--depths alone: {' '.join(map(str, DEFAULT_DEPTHS))})")
    check.add_argument("--steps", metavar="K", help=f"training steps before the last measurement (default {DEFAULT_STEPS})")
    check.add_argument("--seeds", metavar="N", help=f"seeds averaged over (default {DEFAULT_SEEDS})")
    check.add_argument("--out", metavar="FILE.png",
                       help="the plot (default: coordcheck-<experiment>-<parametrization>-<widths|depths>.png here)")
    check.add_argument("--json", action="store_true",
                       help='print only {"parametrization", "widths"|"depths", "scales", "verdicts"} as JSON')
    return check


@dataclass(frozen=True)
class Request:
    """The checked flags: the sweep's axis and sizes, steps, seeds, the plot's path (None: the default)."""

    axis: str
    sizes: tuple[int, ...]
    steps: int
    seeds: int
    out: Path | None
    overrides: tuple[str, ...]


def _bad(flag: str, problem: str, allowed: str):
    from ..config import COMMAND_LINE, ConfigError

    return ConfigError(COMMAND_LINE, flag, problem, allowed)


def _count(flag: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise _bad(flag, f"invalid value {text!r}", "an integer >= 1")
    return value


def _sizes(flag: str, items: list[str], default: tuple[int, ...]) -> tuple[int, ...]:
    if not items:
        return default
    values = []
    for text in items:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < 1:
            raise _bad(flag, f"invalid value {text!r}", "integers >= 1, e.g. " + " ".join(map(str, default)))
        values.append(value)
    if len(set(values)) < 2:
        raise _bad(flag, f"{' '.join(items)}: a check compares at least two sizes", "two or more distinct integers")
    return tuple(sorted(set(values)))


def parse_request(args) -> Request:
    """The flags checked (ConfigError on a bad one). A ``key=value`` after ``--widths 64 128`` lands in the
    sizes' list (argparse's ``nargs="*"`` takes it): it is an override, and goes back with them. A flag
    given without sizes means its defaults."""
    widths = [x for x in args.widths or [] if "=" not in x]
    depths = [x for x in args.depths or [] if "=" not in x]
    moved = tuple(x for x in (args.widths or []) + (args.depths or []) if "=" in x)
    if args.widths is not None and args.depths is not None:
        raise _bad("--widths/--depths", "both given: a check sweeps one axis", "--widths DIM ... or --depths LAYERS ...")
    if args.depths is not None:
        axis, sizes = "depth", _sizes("--depths", depths, DEFAULT_DEPTHS)
    else:
        axis, sizes = "width", _sizes("--widths", widths, DEFAULT_WIDTHS)
    out = None
    if args.out is not None:
        out = Path(args.out)
        if out.suffix.lower() != ".png" or not out.stem:
            raise _bad("--out", f"{args.out!r}: the plot is a PNG", "a file name ending in .png")
    return Request(axis, sizes, _count("--steps", args.steps, DEFAULT_STEPS), _count("--seeds", args.seeds, DEFAULT_SEEDS),
                   out, tuple(args.overrides) + moved)


def _check_out(path: Path) -> None:
    """Refuse a plot path that cannot be written before anything trains (the first existing folder above it)."""
    existing = next(p for p in (path.absolute().parent, *path.absolute().parents) if p.exists())
    if path.is_dir():
        raise _bad("--out", f"{path} is a folder", "a file name ending in .png")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise _bad("--out", f"{path}: {existing} is not a writable folder", "a .png path in a writable folder")


def run(args) -> int:
    from ..config import load_experiment
    from .inputs import baseline_variant, sweep_configs, sweep_data

    request = parse_request(args)
    experiment = load_experiment(args.experiment, list(request.overrides))  # it trains: this machine must be able to
    variant = baseline_variant(experiment)
    parametrization = variant.model["parametrization"]
    out = request.out or Path(f"coordcheck-{experiment.name}-{parametrization}-{request.axis}s.png")
    _check_out(out)
    sweep_configs(variant, variant.data["vocab_size"], request.axis, request.sizes)  # a bad size fails before the data
    data, probe = sweep_data(experiment, variant)
    configs, sweep, base = sweep_configs(variant, data.tokenizer.vocab_size, request.axis, request.sizes)

    from ..bench.variant_speed import run_device
    from ..fileio import write_bytes
    from .measure import coord_check
    from .render import as_json, plot_png, report_lines

    check = coord_check(configs, parametrization, sweep, variant.train, data.train, probe, request.steps,
                        request.seeds, run_device(variant.train), base)
    title = f"{experiment.name}, variant {variant.name}"
    if args.json:
        print(json.dumps(as_json(check)))
    else:
        print("\n".join(report_lines(check, title)))
    write_bytes(out, plot_png(check, title))  # after the numbers are out: a failed write loses no measurement
    if args.json:
        log.info("plot: %s", out)
    else:
        print(f"plot: {out}")
    return 0
