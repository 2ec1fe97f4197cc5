"""The ``run`` flags that launch a sweep on Slurm (``--launcher slurm`` and what it asks for), and the submission."""

from __future__ import annotations

import argparse
from pathlib import Path

SLURM_FLAGS = ("partition", "time", "cpus_per_run", "gpus_per_run", "max_parallel", "slurm_option")


def add_arguments(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group("launcher", "where the runs train: here (local), or as a Slurm job array over the "
                                               "same run folder (docs/cluster.md)")
    group.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local (default): train here; slurm: submit a job array and a final report job, then return")
    group.add_argument("--partition", help="Slurm partition (default: the cluster's default)")
    group.add_argument("--time", help="time limit per array task, as sbatch --time (e.g. 4:00:00); a run pre-empted "
                                      "at the limit is requeued and resumes")
    group.add_argument("--cpus-per-run", type=int, help="CPUs per array task (default 1)")
    group.add_argument("--gpus-per-run", type=int, help="GPUs per array task (default 0; train.devices uses them)")
    group.add_argument("--max-parallel", type=int, help="at most this many array tasks (default: one per run of the first round); each "
                                                        "task trains runs until its round has none left")
    group.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                       help="one more #SBATCH --KEY=VALUE line (repeatable), e.g. account=myproject")


def check_arguments(args) -> None:
    """ConfigError for a Slurm flag without ``--launcher slurm``, or ``--restart`` with it (every task would discard)."""
    from ..config import ConfigError

    given = [f"--{f.replace('_', '-')}" for f in SLURM_FLAGS if getattr(args, f) is not None]
    if args.launcher != "slurm" and given:
        raise ConfigError("command line", given[0], "only applies to --launcher slurm", "--launcher slurm")
    if args.launcher == "slurm" and args.restart:
        raise ConfigError("command line", "--restart", "not with --launcher slurm (every array task would discard the "
                          "runs again)", f"run `python -m workbench run {args.experiment} --restart NAME` locally "
                          f"with a tiny train.steps, or a new --out")


def check_one_node(experiment) -> None:
    """ConfigError for a variant with train.num_nodes > 1: an array task is one runner process on one node
    (its train.devices GPUs go through Lightning as locally); a multi-node run needs srun, which the launcher
    does not issue."""
    from ..config import ConfigError

    for name, variant in experiment.variants.items():
        if variant.train.num_nodes > 1:
            raise ConfigError(str(experiment.path), f"variants.{name}.train.num_nodes",
                              f"{variant.train.num_nodes} nodes per run is not launched by --launcher slurm (one array "
                              "task is one runner on one node)", "1 with --launcher slurm, or launch it yourself with srun")


def submit_to_slurm(args, out: Path) -> int:
    """Submit the sweep (``launch.slurm``) and print the job ids, run folder and progress command."""
    import sys

    from ..config import load_experiment
    from .slurm import SlurmError, SlurmRequest, parse_options, submit, submitted_lines

    request = SlurmRequest(partition=args.partition, time=args.time, cpus_per_run=args.cpus_per_run or 1,
                           gpus_per_run=args.gpus_per_run or 0, max_parallel=args.max_parallel,
                           options=parse_options(args.slurm_option))
    experiment = load_experiment(args.experiment, args.overrides, machine=False)
    check_one_node(experiment)
    try:
        record = submit(experiment, out, args.overrides, args.variant, request)
    except SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(submitted_lines(record, out.absolute())))
    return 0
