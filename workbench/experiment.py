"""Run every (variant, seed) of an experiment into one run folder, resumably, then report.

Re-running the same command keeps finished runs, resumes interrupted ones from their last
checkpoint and retries failed ones. ``only`` restricts to some variants, so several machines
can share one run folder; results.json updates are locked, so concurrent jobs lose nothing.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

import torch
from omegaconf import OmegaConf

from components import TransformerLM

from .atomic import write_text
from .data import DataError, DataSettings, check_sizes, prepare
from .results import ResultsStore

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
    """Tokenised data for each variant, prepared once per distinct data config (cached on disk)."""
    by_key: dict[str, object] = {}
    per_variant = {}
    for name, variant in experiment.variants.items():
        key = repr(sorted(variant.data.items()))
        if key not in by_key:
            by_key[key] = prepare(DataSettings(**variant.data), base_dir=experiment.path.parent)
        per_variant[name] = by_key[key]
        check_sizes(per_variant[name], variant.train["batch_size"], variant.train["seq_len"])
        longest = max(variant.eval_lengths, default=0)
        if longest >= len(per_variant[name].val):
            raise DataError("eval.lengths", f"{longest} tokens needs {longest + 1} validation tokens, the val split has "
                            f"{len(per_variant[name].val)} [variant '{name}'] (raise data.val_fraction or shorten the lengths)")
    return per_variant


def is_global_zero() -> bool:
    """True in the one process that writes results.json and the report: a single process, or rank
    0 of a multi-process run (Lightning's own launcher sets LOCAL_RANK/NODE_RANK, not RANK)."""
    return all(int(os.environ.get(k, "0")) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def run_experiment(experiment, out_dir: Path, only: list[str] | None = None) -> ResultsStore:
    """Train what is not finished yet; write results.json after every run and the report after each."""
    from .training.run import train_run  # Lightning is imported only when training

    from .reports import write_report

    names = experiment.select(only)
    data = prepare_data(experiment)
    store = ResultsStore(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store.register_experiment(
        {"experiment": experiment.name, "description": experiment.description, "baseline": experiment.baseline,
         "seeds": list(experiment.seeds), "budget": experiment.budget, "eval": experiment.eval,
         "sizes": list(experiment.sizes)},
        {n: {**variant_summary(experiment.variants[n], data[n].tokenizer.vocab_size), "data": data[n].summary()}
         for n in experiment.variants},
    )
    write_text(out_dir / "experiment.yaml", OmegaConf.to_yaml(experiment.to_dict()))
    plan = [(n, s) for n in names for s in experiment.seeds]
    for i, (name, seed) in enumerate(plan, 1):
        label = f"run {i}/{len(plan)} {name} seed{seed}"
        if store.finished(name, seed):
            log.info("[%s] already finished, kept", label)
            continue
        log.info("[%s] training", label)
        try:
            record = train_run(experiment.variants[name], seed, data[name], out_dir, label)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one broken run must not end the sweep
            log.error("[%s] failed: %s", label, exc)
            log.debug("%s", traceback.format_exc())
            record = {"seed": seed, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        if is_global_zero():
            store.record_run(name, record)
            try:
                write_report(out_dir)
            except Exception as exc:  # a report problem must never cost a finished run
                log.warning("report not written: %s", exc)
        log.info("[%s] %s%s", label, record["status"],
                 f", final val loss {record['final_val_loss']:.4f}" if record.get("final_val_loss") is not None else "")
    return store
