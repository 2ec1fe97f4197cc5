"""One task of a ``--launcher slurm`` sweep (what the generated batch scripts exec): ``python -m
workbench.launch.slurm_task EXP.yaml --out DIR [--variant=V ...] [key=value ...] [--final]``.

An array task is the ordinary ``run`` on the shared run folder, plus the pre-emption path: on SIGUSR1
(sent by Slurm ``--signal`` before the time limit, or ``scancel --signal=USR1 --batch``) it asks Slurm to
requeue this task; Slurm then stops it with SIGTERM, the run in training saves ``last.ckpt`` and exits
143, and the requeued task resumes it exactly. With ``--final`` (the job after the array) it trains
nothing: it writes the report and exits as ``run`` would have, 3 where a run failed, 1 where a run is
not finished (a task was cancelled or out of time: submit the same command again to resume).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..run_folder import run_owner

log = logging.getLogger("workbench")


def requeue_on_usr1(scontrol: str = "scontrol") -> None:
    """On SIGUSR1, ``scontrol requeue`` this task (Slurm then sends SIGTERM: the run saves and exits)."""
    def handler(signum, frame):
        job = run_owner()["slurm_job"]
        log.warning("pre-emption signal: requeueing Slurm job %s (the run saves its checkpoint on the SIGTERM that follows)", job)
        done = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True) if job else None
        if done is None or done.returncode != 0:  # not requeued: stop as SIGTERM would, saving; a re-run resumes
            log.error("requeue of %s failed (%s): stopping after saving", job, done and done.stderr.strip())
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGUSR1, handler)


def final(argv: list[str]) -> int:
    """The final job: report and exit code of the finished sweep, training nothing."""
    import argparse

    from ..cli import _bad_input_types
    from ..config import load_experiment
    from ..experiment import failed_runs
    from ..results import ResultsStore

    parser = argparse.ArgumentParser(prog="workbench.launch.slurm_task --final")
    parser.add_argument("experiment", type=Path)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append")
    args = parser.parse_args(argv)
    try:
        experiment = load_experiment(args.experiment, args.overrides, machine=False)
        names = experiment.select(args.variant)
        store = ResultsStore(args.out)
        from ..reports import write_report

        print(f"report: {write_report(args.out)}")
    except Exception as exc:
        if isinstance(exc, _bad_input_types()):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    variants = store.load().get("variants", {})
    first = experiment.seeds[:experiment.seed_policy["min"]]
    missing = [f"{n} seed{s}" for n in names if not experiment.tune for s in first
               if not any(r.get("seed") == s for r in variants.get(n, {}).get("runs", []))]
    failed = failed_runs(store, names, experiment.seeds)
    if failed:
        print(f"error: {len(failed)} run(s) failed ({', '.join(failed)}): see the report; submit the same command to "
              f"retry them", file=sys.stderr)
        return 3
    if missing:
        print(f"error: {len(missing)} run(s) not finished ({', '.join(missing)}): a task was cancelled or ran out of "
              f"time; submit the same command to resume them", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--final" in argv:
        argv.remove("--final")
        from ..log_lines import configure_logging

        configure_logging(False)
        return final(argv)
    from ..cli import main as cli_main

    requeue_on_usr1()
    return cli_main(["run", *argv])


if __name__ == "__main__":
    sys.exit(main())
