"""Run every (variant, seed) of an experiment into one run folder, resumably, then report.

Re-running the same command keeps finished runs, resumes interrupted ones from their last
checkpoint and retries failed ones. ``only`` restricts to some variants, so several machines
can share one run folder; results.json updates are locked, so concurrent jobs lose nothing.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import replace
from contextlib import nullcontext
from pathlib import Path

from .config import ConfigError
from .config.schema import variant_defaults
from .data import DataError, DataSettings, check_sizes, prepare
from .distributed import is_global_zero
from .environment import current_environment, remember_environment
from .fileio import STORAGE_ERRORS
from .horizon_sweep import Horizons
from .post_sweep import log_verdicts, record_comparisons, record_samples, record_speed, undecided
from .results import ResultsStore
from .run_folder import RunFolder, RunFolderError, identity, run_label
from .run_groups import entry_cell
from .run_record import FAILED, RunRecord
from .sweep_eta import SweepEta
from .tune_sweep import tune_grids

log = logging.getLogger("workbench")


def variant_summary(variant, vocab_size: int) -> dict:
    """Config, parameter counts, FLOPs/token and K/V memory of a variant, from a model on the meta device."""
    from .reports.attention import attention_memory

    info = {"config": variant.to_dict(), **variant.sizes(vocab_size), "attention": attention_memory(variant.model)}
    if variant.size is not None or variant.point is not None:
        info.update(arch=variant.arch, size=variant.size)
    if variant.point is not None:
        info["tuned"] = variant.point.as_json()
    if variant.control is not None:  # a control of controls: (the A/A twin), not a variant of the design
        info["control"] = variant.control
    return info


def prepare_data(experiment) -> dict[str, object]:
    """Tokenised data for each variant, prepared once per distinct data config (cached on disk).
    A data problem is a ConfigError naming the file that set the offending key."""
    by_key: dict[str, object] = {}
    per_variant = {}
    for name, variant in experiment.variants.items():
        try:
            key = repr(sorted(variant.data.items()))
            if key not in by_key:
                by_key[key] = prepare(DataSettings(**variant.data), base_dir=experiment.path.parent)
            per_variant[name] = by_key[key]
            check_sizes(per_variant[name], variant.train.batch_size, variant.train.seq_len)
            longest = max(variant.eval_lengths, default=0)
            if longest >= len(per_variant[name].val):
                raise DataError("eval.lengths", f"{longest} tokens needs {longest + 1} validation tokens, the val split "
                                f"has {len(per_variant[name].val)} [variant '{name}'] (raise data.val_fraction or shorten the lengths)")
        except DataError as exc:
            source = variant.origins.get(exc.key, (experiment.origins.get(exc.key, (experiment.path,))[0],))[0]
            raise ConfigError(source, exc.key, exc.message) from None
    return per_variant


def run_experiment(experiment, out_dir: Path, only: list[str] | None = None, restart: list[str] | None = None) -> ResultsStore:
    """Train what is not finished yet; write each run's record and results.json after every run, and the
    report after each. With ``seeds: {min, max}``, first ``min`` seeds, then one more seed per round for the
    comparisons still undecided (and their baselines), until decided or ``max``."""
    names = experiment.select(only)
    data = prepare_data(experiment)
    folder = RunFolder(out_dir, variant_defaults())
    idents = {n: identity(v.to_dict(), data[n].fingerprint, data[n].tokenizer.sha256, folder.defaults)
              for n, v in experiment.variants.items()}
    lead = is_global_zero()  # the other ranks of a multi-process run follow rank 0's runs: no claims, no writes
    if lead:
        folder.claim(experiment.name)
        register(experiment, data, folder, idents, _restarted(experiment, folder, restart) if restart else [])
    if experiment.sequential:  # rounds are decided against the baselines: a --variant job trains them too
        cells = {experiment.variants[n].cell for n in names} | {experiment.baseline_cell(n) for n in names}
        names = [n for n, v in experiment.variants.items() if v.cell in cells]
    sweep = _Sweep(experiment, data, folder, idents, lead)
    selected = names
    if experiment.tune:  # each variant's verdict seeds train at its own optimum
        names = tune_grids(experiment, sweep, folder.store, names)
    first = experiment.seeds[:experiment.seed_policy["min"]]
    sweep.train_round([(n, s) for n in names for s in first])
    for seed in experiment.seeds[len(first):]:
        groups = undecided(experiment, folder.store, names)
        if not groups:
            break
        log.info("seed %d for the comparisons still undecided: %s", seed, ", ".join(groups))
        sweep.train_round([(n, seed) for n in groups])
    store = folder.store
    if lead:
        comparisons = record_comparisons(store)
        log_verdicts(experiment, store, selected, comparisons)
        record_speed(experiment, data, store)
        record_samples(store)
    return store


def _restarted(experiment, folder: RunFolder, restart: list[str]) -> list[str]:
    """The run groups ``--restart`` discards: the named variants', and for a tuned experiment every grid point of
    theirs the folder holds, also those of a grid the experiment no longer runs."""
    names = experiment.select(restart)
    cells = {experiment.variants[n].cell for n in names}
    held = folder.store.load().get("variants", {}) if experiment.tune else {}
    old = [n for n, e in held.items() if n not in names and isinstance(e, dict) and "tuned" in e and entry_cell(e) in cells]
    return names + old


def register(experiment, data: dict, folder: RunFolder, idents: dict, restart: list[str]) -> None:
    """Check the folder against this experiment (every variant's identity, the seed policy), then write
    experiment.yaml, every variant.json and the results.json header, and this invocation's environment.
    ``restart`` variants have their runs discarded first. A refused process writes nothing."""
    from .reports.analysis.verdicts import DEFAULT_MARGIN, SeedPolicy

    variants = {n: {**variant_summary(experiment.variants[n], data[n].tokenizer.vocab_size), "data": data[n].summary(),
                    "identity": idents[n]} for n in experiment.variants}
    tune = {**experiment.tune.as_dict(), "tuning_seeds": experiment.tuning_seeds()} if experiment.tune else None
    header = {"experiment": experiment.name, "description": experiment.description, "baseline": experiment.baseline,
              # the seeds every run group trains; a sequential policy adds more where a comparison is undecided
              "seeds": experiment.seeds[:experiment.seed_policy["min"]],
              "seed_policy": {**experiment.seed_policy, "alpha": SeedPolicy.alpha},
              "equivalence_margin": experiment.equivalence_margin or DEFAULT_MARGIN, "reference": experiment.reference,
              "ladder": experiment.ladder, "budget": experiment.budget, "eval": experiment.eval,
              "sizes": list(experiment.sizes), "tune": tune, "controls": list(experiment.controls)}
    folder.register(header, experiment.to_dict(), variants, restart)
    environment = current_environment(experiment.imports)
    folder.store.update(lambda results: remember_environment(results, environment))


class _Sweep:
    """The runs of one invocation: what it trains them on, the run folder, each variant's identity."""

    def __init__(self, experiment, data: dict, folder: RunFolder, idents: dict, lead: bool):
        self.experiment, self.data, self.folder, self.idents, self.lead = experiment, data, folder, idents, lead
        self.horizons = Horizons(experiment, folder)  # WSD steps sweeps: shorter horizons branch off longer ones
        self.eta = SweepEta()  # runs done, elapsed and time left, on the log lines and the progress bar

    def claim(self, name: str, seed: int, wait: bool):
        """The run's lock, checked against the variant's registration (rank 0 only: the others follow it)."""
        return self.folder.claim_run(name, seed, self.idents[name], wait) if self.lead else nullcontext(True)

    def train_round(self, plan: list[tuple[str, int]]) -> None:
        """Train ``plan``'s runs, a WSD horizon family's longest first (``horizon_sweep``). A run another process
        holds (its lock) is skipped, with the shorter runs of its family, then waited for at the end and trained
        here if that process did not finish it."""
        held: list[tuple[str, int]] = []
        plan = self.horizons.order(plan)
        trains = {n: self.experiment.variants[n].train for n, _ in plan}
        self.eta.plan([(n, s, trains[n].steps, trains[n].tokens_per_step) for n, s in plan])
        for i, (name, seed) in enumerate(plan, 1):
            label = f"run {i}/{len(plan)} {run_label(name, seed)}"
            if self.horizons.waits(name, seed, held):
                log.info("[%s] a longer horizon it branches off is training elsewhere: waits for it", label)
                held.append((name, seed))
                continue
            with self.claim(name, seed, wait=False) as mine:
                if not mine:
                    log.info("[%s] another process is training it: skipped for now", label)
                    held.append((name, seed))
                    continue
                self.train_and_record(name, seed, label)
        for name, seed in held:
            with self.claim(name, seed, wait=True):
                self.train_and_record(name, seed, run_label(name, seed))
        if not self.lead and (self.experiment.sequential or self.experiment.tune):  # decided from rank 0's records
            wait_for_records(self.folder.store, plan)

    def train_and_record(self, name: str, seed: int, label: str) -> None:
        from .training.run import train_run  # Lightning is imported only when training

        if self.folder.kept(name, seed, self.idents[name]) if self.lead else self.folder.store.finished(name, seed):
            log.info("[%s] already finished, kept", label)
            self.eta.skip(name, seed)
            return
        log.info("[%s] training (%s)", label, self.eta.line())
        self.eta.start(name, seed)
        try:
            record = train_run(self.experiment.variants[name], seed, self.data[name], self.folder.root, label,
                               self.horizons.horizon(name, seed), eta=self.eta)
        except (KeyboardInterrupt, RunFolderError):
            raise
        except OSError as exc:
            if exc.errno in STORAGE_ERRORS:  # no space, read-only, no permission: every other run would fail too
                raise
            record = _failed(label, seed, exc)
        except Exception as exc:  # one broken run must not end the sweep
            record = _failed(label, seed, exc)
        if self.lead:
            from .reports import write_report

            point = self.experiment.variants[name].point  # a failed run's record names its grid point too
            record = replace(record, identity=self.idents[name]["fingerprint"], tuned_value=point.value if point else None)
            self.folder.record(name, record, self.idents[name])
            try:
                write_report(self.folder.root)
            except Exception as exc:  # a report problem must never cost a finished run
                log.warning("report not written: %s", exc)
        self.eta.finish(name, seed, int(record.steps or 0) - (record.resumed_from_step or 0))
        log.info("[%s] %s%s; %s", label, record.status,
                 f", final val loss {record.final_val_loss:.4f} (whole val split)" if record.final_val_loss is not None else "",
                 self.eta.line())


def wait_for_records(store: ResultsStore, plan: list[tuple[str, int]], timeout_s: float = 24 * 3600,
                     clock=time.monotonic, sleep=time.sleep) -> None:
    """Until rank 0 has recorded every run of ``plan``; RunFolderError after ``timeout_s`` (rank 0 died)."""
    deadline = clock() + timeout_s
    while any(not _recorded(store, n, s) for n, s in plan):
        if clock() > deadline:
            missing = ", ".join(run_label(n, s) for n, s in plan if not _recorded(store, n, s))
            raise RunFolderError(f"{store.path}: rank 0 recorded no result for {missing} within {timeout_s:.0f} s "
                                 f"(did it stop?); re-run the command to resume")
        sleep(0.5)


def _recorded(store: ResultsStore, name: str, seed: int) -> bool:
    return any(r.get("seed") == seed for r in store.load().get("variants", {}).get(name, {}).get("runs", []))


def _failed(label: str, seed: int, exc: Exception) -> RunRecord:
    log.error("[%s] failed: %s", label, exc)
    log.debug("%s", traceback.format_exc())
    return RunRecord(seed, FAILED, error=f"{type(exc).__name__}: {exc}")


def failed_runs(store: ResultsStore, names: list[str], seeds: list[int]) -> list[str]:
    """'variant seedK' of every run among ``names`` x ``seeds`` whose last attempt failed."""
    variants = store.load().get("variants", {})
    return [run_label(n, r["seed"]) for n in names for r in variants.get(n, {}).get("runs", [])
            if r.get("seed") in seeds and r.get("status") == "failed"]
