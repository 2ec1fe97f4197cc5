"""The ``bench`` subcommand's arguments and entry point. Importing this module is cheap: torch,
transformers and Lightning load only when the command runs."""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    bench = sub.add_parser(
        "bench", help="measure speed: training step vs transformers, MFU, attention memory, Lightning overhead",
        description="Benchmarks, each a ratio measured in this process with interleaved repetitions and medians.",
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON instead of Markdown tables")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, no compile: a smoke test of seconds")
    compile_group = bench.add_mutually_exclusive_group()
    compile_group.add_argument("--compile", dest="compile", action="store_true", default=None,
                               help="also time torch.compile (default; off with --quick)")
    compile_group.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    bench.add_argument("--section", action="append", choices=("gemm", "step", "attention", "overhead"),
                       help="run only this section (repeatable; the strict MFU needs gemm)")
    bench.add_argument("--precision", action="append", choices=("fp32", "bf16", "fp16"),
                       help="time the training step in this precision only (repeatable; default fp32 and bf16 on CPU, "
                            "bf16 on GPU; a reduced precision this CPU has no vector arithmetic for is skipped, with why)")
    bench.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    bench.add_argument("--out", metavar="FILE", help="also write the JSON results to FILE")
    return bench


def command_line(args) -> str:
    """The command that reproduces this run, for the results and the docs."""
    parts = ["python", "-m", "workbench", "bench"]
    parts += ["--quick"] if args.quick else []
    if args.compile is not None and args.compile != (not args.quick):
        parts.append("--compile" if args.compile else "--no-compile")
    for section in args.section or []:
        parts += ["--section", section]
    for precision in args.precision or []:
        parts += ["--precision", precision]
    parts += [] if args.device == "auto" else ["--device", args.device]
    parts += ["--json"] if args.json else []
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    from ..fileio import write_json
    from .format import markdown
    from .runner import Settings, run_bench

    try:
        settings = Settings.make(quick=args.quick, compile=args.compile, sections=args.section, device=args.device,
                                 precisions=args.precision)
    except ValueError as exc:  # reported like any bad input
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = run_bench(settings, command_line(args))
    if args.out:
        write_json(args.out, results)
    print(json.dumps(results, indent=2) if args.json else markdown(results))
    return 0
