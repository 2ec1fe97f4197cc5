"""Command line: run, show, data, report, figure, components, init, bench, coordcheck, sample, export. Heavy imports (Lightning) happen only in ``run``.

Exit codes: 0 success (diverged runs are results); 2 bad input or a refused run folder (one line
naming the file, key, value and allowed values, no traceback); 3 the sweep ran but some run failed;
130 / 143 stopped by Ctrl-C / SIGTERM after saving; 1 anything else (a full disk: one line too).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .fileio import STORAGE_ERRORS
from .log_lines import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description="Architecture ablation workbench for transformer LMs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train every variant and seed of an experiment, then write the report")
    run.add_argument("experiment", type=Path, help="experiment YAML, e.g. experiments/ablate_norm.yaml")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.steps=50")
    run.add_argument("--out", help="run folder (default: runs/<experiment name>)")
    run.add_argument("--variant", action="append", metavar="NAME", help="run only this variant (repeatable)")
    run.add_argument("--restart", action="append", metavar="NAME",
                     help="discard this variant's runs (finished or partial) and train it again (repeatable)")
    from .launch.cli import add_arguments as add_launch_arguments  # argparse only

    add_launch_arguments(run)

    show = sub.add_parser("show", help="the baseline's resolved config, what each variant changes, parameters and "
                                       "FLOPs/token; trains nothing")
    show.add_argument("experiment", type=Path)
    show.add_argument("overrides", nargs="*", metavar="key=value")
    show.add_argument("--full", action="store_true", help="every key of every variant, not only the differences")

    report = sub.add_parser("report", help="rebuild report.md and report.html from RUN_DIR/results.json")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--rebuild", action="store_true",
                        help="first write results.json anew from the run folders (each run's record.json)")

    figure = sub.add_parser("figure", help="draw the top of RUN_DIR's report as one PNG: a sentence per comparison, the "
                                           "paired per-seed differences the verdicts test, the unpaired means below")
    figure.add_argument("run_dir", type=Path, help="a run folder with results.json, e.g. runs/ablate_norm")
    figure.add_argument("out", type=Path, help="the PNG to write, e.g. docs/report.png")

    status = sub.add_parser("status", help="every run of RUN_DIR: pending / running (host, step) / completed / failed / "
                                           "diverged, and its Slurm jobs' states; readable while a sweep runs")
    status.add_argument("run_dir", type=Path)

    sub.add_parser("components", help="every registered component, by kind, with its description and options (with "
                                      "defaults)")

    init = sub.add_parser("init", help="write a starter experiment NAME.yaml in the current folder (never overwrites)")
    init.add_argument("name", help="the experiment's name (and file name)")

    data = sub.add_parser("data", help="prepare (or find in the cache) the data of an experiment and describe it: "
                                       "documents, bytes, tokens, bytes per token, cache path; trains nothing")
    data.add_argument("experiment", type=Path)
    data.add_argument("overrides", nargs="*", metavar="key=value")

    _add_model_commands(sub)
    from .bench.cli import add_parser as add_bench_parser  # argparse only; the bench's imports stay lazy

    add_bench_parser(sub)
    from .coordcheck.cli import add_parser as add_coordcheck_parser  # argparse only: torch loads when it runs

    add_coordcheck_parser(sub)
    return parser


MAX_SAMPLING_SEED = 2**64 - 1  # what torch.Generator.manual_seed takes


def _add_model_commands(sub) -> None:
    """`sample` and `export`: the commands that load a trained variant from a run folder."""
    sample = sub.add_parser("sample", help="continue a prompt with each variant's trained model, one after another")
    sample.add_argument("run_dir", type=Path)
    sample.add_argument("--prompt", required=True, help="the text to continue")
    sample.add_argument("--variant", action="append", metavar="NAME",
                        help="sample this variant (repeatable; default: every variant with a completed run)")
    sample.add_argument("--seed", type=int, help="the trained seed to load (default: each variant's first completed one)")
    sample.add_argument("--sampling-seed", type=int, default=0, help="the draw's seed, the same for every variant (default 0)")
    sample.add_argument("--max-new-tokens", type=int, default=100)
    sample.add_argument("--temperature", type=float, default=1.0, help="0: greedy (default 1)")
    sample.add_argument("--top-k", type=int, help="draw from the K most probable tokens only")
    sample.add_argument("--top-p", type=float, help="draw from the smallest set of tokens holding this probability")

    export = sub.add_parser("export", help="write a trained variant as a transformers folder (or a plain one where "
                                           "transformers cannot express the architecture)")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--variant", required=True, metavar="NAME")
    export.add_argument("--seed", type=int, help="the trained seed (default: the first completed one)")
    export.add_argument("--out", required=True, help="a new (or empty) folder")


def _bad_input_types() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .data import DataError
    from .folder_safety import RunFolderError

    reports = sys.modules.get("workbench.reports")  # not imported: none of its errors was raised (saves ~1 s)
    return (ConfigError, DataError, RunFolderError) + ((reports.ReportError,) if reports else ())


def _out_folder(text: str) -> Path:
    """``--out`` as a Path; an empty one would silently mean the current folder, so it is refused."""
    from .folder_safety import RunFolderError

    if not text.strip():
        raise RunFolderError(f"--out {text!r}: an empty path would write into the current folder; name a folder "
                             f"(--out . for the current one)")
    return Path(text)


def cmd_components(args) -> int:
    from .components_listing import listing_lines

    print("\n".join(listing_lines()))
    return 0


def cmd_init(args) -> int:
    from .init_template import InitError, write_starter

    try:
        path = write_starter(args.name, Path.cwd())
    except InitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: look at it with `python -m workbench show {path.name}`, "
          f"train it with `python -m workbench run {path.name}`")
    return 0


def cmd_show(args) -> int:
    from .config import load_experiment
    from .show import show_lines

    experiment = load_experiment(args.experiment, args.overrides, machine=False)  # describes: any machine will do
    print("\n".join(show_lines(experiment, full=args.full)))
    return 0


def cmd_data(args) -> int:
    from .config import ConfigError, load_experiment
    from .data import DataError, DataSettings, prepare

    experiment = load_experiment(args.experiment, args.overrides, machine=False)  # prepares data: trains nothing
    described: dict[str, str] = {}  # data config -> the first variant that uses it
    for name, variant in experiment.variants.items():
        key = repr(sorted(variant.data.items()))
        if key in described:
            print(f"== {name} ==  the same data as {described[key]}")
            continue
        described[key] = name
        try:
            data = prepare(DataSettings(**variant.data), base_dir=experiment.path.parent)
        except DataError as exc:
            source = variant.origins.get(exc.key, (experiment.origins.get(exc.key, (experiment.path,))[0],))[0]
            raise ConfigError(source, exc.key, exc.message) from None
        print(f"== {name} ==\n{data.describe()}")
    return 0


def cmd_run(args) -> int:
    from .config import load_experiment

    from .launch.cli import check_arguments

    check_arguments(args)
    experiment = load_experiment(args.experiment, args.overrides, machine=args.launcher == "local")  # slurm: checked there
    experiment.select(args.variant)  # unknown --variant names: ConfigError (a variant, or a variant@size)
    experiment.select(args.restart)
    out = _out_folder(args.out) if args.out is not None else Path("runs") / experiment.name
    _check_writable(out)
    from .lock_support import check_flock

    check_flock(out)  # concurrent processes share the folder under flock: refuse a file system that ignores it
    if args.launcher == "slurm":
        from .launch.cli import submit_to_slurm

        return submit_to_slurm(args, out)
    from .experiment import failed_runs, is_global_zero, run_experiment  # imports torch/lightning only after the config is known good

    store = run_experiment(experiment, out, args.variant, args.restart)
    if not is_global_zero():  # the other ranks of a multi-process run: rank 0 writes the report
        return 0
    from .reports import write_report

    path = write_report(out)
    _end_of_run(out, path)
    failed = failed_runs(store, experiment.select(args.variant), experiment.seeds)
    if failed:
        print(f"error: {len(failed)} run(s) failed ({', '.join(failed)}): see the report; re-run the same command to "
              f"retry them", file=sys.stderr)
        return 3
    return 0


def _end_of_run(out: Path, report: Path) -> None:
    """The results table and both report files on the log (stderr), so a batch job's log ends with the
    answer; ``report: PATH`` on stdout too where stdout goes somewhere else (a pipe, a file of its own)."""
    from .run_summary import end_of_run_lines

    try:
        lines = end_of_run_lines(out, report)
    except Exception as exc:  # the report is written: a table problem must not turn success into an error
        lines = [f"(no results table: {exc})", f"report: {report}", f"        {report.with_suffix('.html')}"]
    log = logging.getLogger("workbench")
    for line in lines:
        log.info("%s", line)
    if not _same_destination(sys.stdout, sys.stderr):
        print(f"report: {report}")


def _same_destination(a, b) -> bool:
    """Whether two streams write to the same file or terminal (``> log 2>&1``, an interactive shell)."""
    try:
        first, second = os.fstat(a.fileno()), os.fstat(b.fileno())
    except (AttributeError, OSError, ValueError):  # a stream without a file descriptor (captured, in memory)
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _check_writable(out: Path) -> None:
    """Refuse an --out folder that cannot be written, before anything is trained (and creating nothing)."""
    from .folder_safety import RunFolderError

    dangling = next((p for p in (out.absolute(), *out.absolute().parents) if p.is_symlink() and not p.exists()), None)
    existing = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    if dangling is not None:
        problem = f"{dangling} is a symbolic link to {os.readlink(dangling)}, which leads nowhere (a missing target or a loop)"
    elif not existing.is_dir():
        problem = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    else:
        return
    raise RunFolderError(f"{out}: cannot write the run folder there ({problem}); choose another --out")


def cmd_report(args) -> int:
    from .reports import write_report

    if args.rebuild:
        from .run_folder import rebuild_results

        from .post_sweep import record_comparisons
        from .results import ResultsStore

        data = rebuild_results(args.run_dir)
        record_comparisons(ResultsStore(args.run_dir))  # the verdicts and each tuned variant's optimum, as a run stores them
        runs = sum(len(v["runs"]) for v in data["variants"].values())
        print(f"rebuilt {args.run_dir / 'results.json'}: {runs} run(s) of {len(data['variants'])} variant(s)")
    print(f"report: {write_report(args.run_dir)}")
    return 0


def cmd_status(args) -> int:
    from .status import status_lines

    print("\n".join(status_lines(args.run_dir)))
    return 0


def cmd_figure(args) -> int:
    from .reports.answer_figure import write_figure

    print(f"wrote {write_figure(args.run_dir, args.out)}")
    return 0


def cmd_sample(args) -> int:
    from .sample import SampleError, describe_settings, format_samples, sample_run

    if not 0 <= args.sampling_seed <= MAX_SAMPLING_SEED:
        print(f"error: --sampling-seed {args.sampling_seed}: out of range (allowed: an integer in [0, "
              f"{MAX_SAMPLING_SEED}])", file=sys.stderr)
        return 2

    try:
        samples = sample_run(args.run_dir, args.prompt, args.variant, args.seed, args.max_new_tokens, args.temperature,
                             args.top_k, args.top_p, args.sampling_seed)
    except SampleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_samples(samples, describe_settings(args.temperature, args.top_k, args.top_p, args.sampling_seed)))
    return 0


def cmd_export(args) -> int:
    from .export import export_run

    done = export_run(args.run_dir, args.variant, _out_folder(args.out), args.seed)
    if done.form == "transformers":
        print(f"exported {done.variant} (seed {done.seed}) to {done.out}: load it with "
              f"transformers.AutoModelForCausalLM.from_pretrained and AutoTokenizer.from_pretrained")
    else:
        files = ", ".join(sorted(p.name for p in done.out.iterdir() if p.name != "README.md"))
        print(f"exported {done.variant} (seed {done.seed}) to {done.out} as a plain workbench folder ({files}; how "
              f"to load them: {done.out / 'README.md'}), not a transformers one: {done.reason}")
    return 0


def cmd_bench(args) -> int:
    from .bench.cli import run

    return run(args)


def cmd_coordcheck(args) -> int:
    from .coordcheck.cli import run

    return run(args)


def _stdout_closed() -> int:
    """Where stdout's reader has gone (``show EXP | head -1``): end quietly, as Unix tools do, with
    128 + SIGPIPE; stdout goes to /dev/null so the interpreter's final flush raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # a stdout without a file descriptor (captured in a test)
        pass
    return 141


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # argparse takes positionals in one run: overrides written after --out/--variant land here.
    if extra and hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging(args.verbose)  # time-stamped lines unless stderr is a terminal
    command = {"run": cmd_run, "show": cmd_show, "report": cmd_report, "components": cmd_components, "data": cmd_data,
               "bench": cmd_bench, "init": cmd_init, "sample": cmd_sample, "export": cmd_export, "figure": cmd_figure,
               "coordcheck": cmd_coordcheck, "status": cmd_status}[args.command]
    try:
        code = command(args)
        sys.stdout.flush()  # a reader that went away (| head) shows here rather than at exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in STORAGE_ERRORS:
            raise
        print(f"error: cannot write {exc.filename or 'a file'}: {exc.strerror}; nothing already saved was lost: "
              f"free space (or fix the folder) and re-run the same command to resume", file=sys.stderr)
        return 1
    except Exception as exc:
        if isinstance(exc, _bad_input_types()):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
