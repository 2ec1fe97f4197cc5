"""Run every (variant, seed) of an experiment into one run folder, resumably, then report.

Re-running the same command keeps finished runs, resumes interrupted ones from their last
checkpoint and retries failed ones. ``only`` restricts to some variants, so several machines
can share one run folder; results.json updates are locked, so concurrent jobs lose nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import traceback
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

from components import TransformerLM

from .config import ConfigError
from .data import DataError, DataSettings, check_sizes, prepare
from .fileio import STORAGE_ERRORS, locked, remove_stale_temps, write_json, write_text
from .results import ResultsStore, RunFolderError

log = logging.getLogger("workbench")


def variant_summary(variant, vocab_size: int) -> dict:
    """Config, parameter counts, FLOPs/token and K/V memory of a variant, from a model on the meta device."""
    from .reports.attention import attention_memory

    with torch.device("meta"):
        model = TransformerLM(variant.transformer_config(vocab_size))
    info = {
        "config": variant.to_dict(),
        "params": model.num_params(),
        "non_embedding_params": model.num_params(non_embedding=True),
        "flops_per_token": model.flops_per_token(variant.train["seq_len"]),
        "attention": attention_memory(variant.model),
    }
    if variant.size is not None:
        info.update(arch=variant.arch, size=variant.size)
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
            check_sizes(per_variant[name], variant.train["batch_size"], variant.train["seq_len"])
            longest = max(variant.eval_lengths, default=0)
            if longest >= len(per_variant[name].val):
                raise DataError("eval.lengths", f"{longest} tokens needs {longest + 1} validation tokens, the val split "
                                f"has {len(per_variant[name].val)} [variant '{name}'] (raise data.val_fraction or shorten the lengths)")
        except DataError as exc:
            source = variant.origins.get(exc.key, (experiment.origins.get(exc.key, (experiment.path,))[0],))[0]
            raise ConfigError(source, exc.key, exc.message) from None
    return per_variant


def is_global_zero() -> bool:
    """True in the one process that writes results.json and the report: a single process, or rank
    0 of a multi-process run (Lightning's own launcher sets LOCAL_RANK/NODE_RANK, not RANK)."""
    return all(int(os.environ.get(k, "0")) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def run_experiment(experiment, out_dir: Path, only: list[str] | None = None, restart: list[str] | None = None) -> ResultsStore:
    """Train what is not finished yet; write each run's record and results.json after every run, and the
    report after each. Runs another process holds (its lock) are skipped, then waited for at the end."""
    from .training.run import train_run  # Lightning is imported only when training

    names = experiment.select(only)
    data = prepare_data(experiment)
    store = ResultsStore(out_dir)
    lead = is_global_zero()  # the other ranks of a multi-process run follow rank 0's runs: no claims, no writes
    if lead:
        claim_folder(experiment, store)
        for name in experiment.select(restart) if restart else []:
            discard_runs(store, name)
        register(experiment, data, store)
    plan = [(n, s) for n in names for s in experiment.seeds]
    held: list[tuple[str, int]] = []
    for i, (name, seed) in enumerate(plan, 1):
        label = f"run {i}/{len(plan)} {name} seed{seed}"
        with _claim(out_dir, name, seed, lead, wait=False) as mine:
            if not mine:
                log.info("[%s] another process is training it: skipped for now", label)
                held.append((name, seed))
                continue
            _train_and_record(experiment, name, seed, data[name], store, label, train_run)
    for name, seed in held:  # wait for the other process; train it here if that one did not finish it
        with _claim(out_dir, name, seed, lead, wait=True):
            _train_and_record(experiment, name, seed, data[name], store, f"{name} seed{seed}", train_run)
    return store


def _claim(out_dir: Path, name: str, seed: int, lead: bool, wait: bool):
    """The run's lock (``RUN_DIR/<variant>/seed<k>/.lock``): one process trains a run at a time."""
    return locked(out_dir / name / f"seed{seed}" / ".lock", wait=wait) if lead else nullcontext(True)


def claim_folder(experiment, store: ResultsStore) -> None:
    """Refuse a run folder that holds another experiment; delete temp files a killed process left."""
    out_dir = store.run_dir
    for path, found in ((out_dir / "experiment.yaml", (_read_yaml(out_dir / "experiment.yaml") or {}).get("name")),
                        (store.path, store.load().get("experiment"))):
        if found not in (None, experiment.name):
            raise RunFolderError(f"{path}: this folder holds experiment '{found}', not '{experiment.name}'; "
                                 f"use --out for a new run folder")
    removed = remove_stale_temps(out_dir) if out_dir.is_dir() else []
    if removed:
        log.info("removed %d temp file(s) left by a killed process, e.g. %s", len(removed), removed[0])


def register(experiment, data: dict, store: ResultsStore) -> None:
    """Write experiment.yaml and every variant's variant.json (what ``report --rebuild`` reads), and
    register the variants in results.json (refused if one has runs of another config)."""
    out_dir = store.run_dir
    variants = {n: {**variant_summary(experiment.variants[n], data[n].tokenizer.vocab_size), "data": data[n].summary()}
                for n in experiment.variants}
    store.register_experiment(
        {"experiment": experiment.name, "description": experiment.description, "baseline": experiment.baseline,
         "seeds": list(experiment.seeds), "budget": experiment.budget, "eval": experiment.eval,
         "sizes": list(experiment.sizes)}, variants)
    write_text(out_dir / "experiment.yaml", OmegaConf.to_yaml(experiment.to_dict()))
    for name, info in variants.items():
        write_json(out_dir / name / "variant.json", info)


def discard_runs(store: ResultsStore, name: str) -> None:
    """``--restart NAME``: delete the variant's run folders and records, so it trains from scratch."""
    for folder in sorted((store.run_dir / name).glob("seed*")):
        with locked(folder / ".lock", wait=False) as mine:
            if not mine:
                raise RunFolderError(f"{folder}: another process is training this run; stop it before --restart {name}")
            for child in folder.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    store.forget(name)
    log.info("--restart %s: its runs were discarded", name)


def _train_and_record(experiment, name: str, seed: int, data, store: ResultsStore, label: str, train_run) -> None:
    if store.finished(name, seed):
        log.info("[%s] already finished, kept", label)
        return
    log.info("[%s] training", label)
    try:
        record = train_run(experiment.variants[name], seed, data, store.run_dir, label)
    except (KeyboardInterrupt, RunFolderError):
        raise
    except OSError as exc:
        if exc.errno in STORAGE_ERRORS:  # no space, read-only, no permission: every other run would fail too
            raise
        record = _failed(label, seed, exc)
    except Exception as exc:  # one broken run must not end the sweep
        record = _failed(label, seed, exc)
    if is_global_zero():
        from .reports import write_report

        store.record_run(name, record)
        try:
            write_report(store.run_dir)
        except Exception as exc:  # a report problem must never cost a finished run
            log.warning("report not written: %s", exc)
    log.info("[%s] %s%s", label, record["status"],
             f", final val loss {record['final_val_loss']:.4f}" if record.get("final_val_loss") is not None else "")


def _failed(label: str, seed: int, exc: Exception) -> dict:
    log.error("[%s] failed: %s", label, exc)
    log.debug("%s", traceback.format_exc())
    return {"seed": seed, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def failed_runs(store: ResultsStore, names: list[str], seeds: list[int]) -> list[str]:
    """'variant seedK' of every run among ``names`` x ``seeds`` whose last attempt failed."""
    variants = store.load().get("variants", {})
    return [f"{n} seed{r['seed']}" for n in names for r in variants.get(n, {}).get("runs", [])
            if r.get("seed") in seeds and r.get("status") == "failed"]


def _read_yaml(path: Path) -> dict | None:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return spec if isinstance(spec, dict) else None
