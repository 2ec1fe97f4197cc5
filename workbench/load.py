"""``load_run``: a trained model and its tokenizer, from the run folder alone.

Reads results.json (which runs completed), the run's final checkpoint ``last.ckpt`` (checked against the
sha256 written beside it, loaded as plain data: ``weights_only``) and the tokenizer the run folder keeps.
Neither the experiment file nor the data cache is read, so a copied folder loads anywhere. Lightning is
not imported.

    import torch, workbench
    model, tokenizer = workbench.load_run("runs/ablate_norm", "rmsnorm")
    logits = model(torch.tensor([tokenizer.encode("def main():")]))
"""

from __future__ import annotations

import pickle
from pathlib import Path

import yaml

from components import InvalidConfig, TransformerConfig, TransformerLM

from .checkpoint_file import IDENTITY_KEY, DamagedCheckpoint, load_verified
from .data.tokenizer import Tokenizer
from .results import RunFolderError, read_results

STATE_PREFIX = "model."  # the Lightning module holds the TransformerLM as ``self.model``


class LoadError(RunFolderError):
    """A run that cannot be loaded; one line naming the folder, the variant, what is wrong and what exists."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def load_run(run_dir: str | Path, variant: str, seed: int | None = None) -> tuple[TransformerLM, Tokenizer]:
    """``variant``'s trained model (eval mode, CPU, float32) and its tokenizer; ``seed`` None: the first
    completed seed. Raises LoadError for a missing variant or seed, a run that did not complete, a damaged
    checkpoint or a missing tokenizer file."""
    run_dir = Path(run_dir)
    runs = _variant_runs(run_dir, variant)
    seed = _completed_seed(run_dir, variant, runs, seed)
    where = f"{run_dir}: variant '{variant}' seed {seed}"
    completed = f"(completed seeds: {', '.join(str(s) for s in _completed(runs))})"
    checkpoint = _read_checkpoint(run_dir / variant / f"seed{seed}" / "checkpoints" / "last.ckpt", where, completed)
    identity = checkpoint.get(IDENTITY_KEY)
    if not isinstance(identity, dict) or not {"model", "tokenizer"} <= set(identity):
        raise LoadError(f"{where}: its checkpoint records no model config and tokenizer (trained before run folders "
                        f"kept them); train it again with --restart {variant} {completed}")
    model = _build_model(run_dir, identity["model"], checkpoint["state_dict"], where)
    tokenizer = _read_tokenizer(run_dir / identity["tokenizer"], model.config.vocab_size, where, completed)
    return model, tokenizer


def _variant_runs(run_dir: Path, variant: str) -> list[dict]:
    results = read_results(run_dir / "results.json")
    if not results:
        raise LoadError(f"{run_dir}: no results.json: not a run folder, or no run has been recorded yet")
    variants = results.get("variants", {})
    if variant not in variants:
        raise LoadError(f"{run_dir}: no variant '{variant}' (variants: {', '.join(variants) or 'none'})")
    return variants[variant].get("runs", [])


def _completed(runs: list[dict]) -> list[int]:
    return [r["seed"] for r in runs if r.get("status") == "completed"]


def _completed_seed(run_dir: Path, variant: str, runs: list[dict], seed: int | None) -> int:
    """``seed`` if its run completed (the first completed seed when None), else LoadError saying why not."""
    recorded = {r["seed"]: r for r in runs}
    unfinished = sorted({int(p.name[4:]) for p in (run_dir / variant).glob("seed*") if p.name[4:].isdigit()} - set(recorded))
    seeds = [f"{s} {r.get('status')}" for s, r in sorted(recorded.items())] + [f"{s} unfinished" for s in unfinished]
    listing = f"(seeds: {', '.join(seeds) or 'none'})"
    where = f"{run_dir}: variant '{variant}'"
    if seed is None:
        if not _completed(runs):
            raise LoadError(f"{where} has no completed run {listing}")
        return _completed(runs)[0]
    if seed in unfinished:
        raise LoadError(f"{where} seed {seed} has not finished (in progress, or interrupted: re-run the experiment "
                        f"to finish it) {listing}")
    if seed not in recorded:
        raise LoadError(f"{where} has no seed {seed} {listing}")
    status = recorded[seed].get("status")
    if status != "completed":
        error = recorded[seed].get("error")
        raise LoadError(f"{where} seed {seed} did not complete: {status}{f' ({error})' if error else ''} {listing}")
    return seed


def _read_checkpoint(path: Path, where: str, completed: str) -> dict:
    """The checkpoint as plain data, checked against the sha256 written beside it (``load_verified``)."""
    try:
        return load_verified(path)
    except OSError as exc:
        raise LoadError(f"{where}: cannot read {exc.filename}: {exc.strerror} {completed}") from None
    except DamagedCheckpoint as exc:
        raise LoadError(f"{where}: damaged checkpoint {path}: {exc} {completed}") from None
    except pickle.UnpicklingError:
        raise LoadError(f"{where}: {path} holds objects other than tensors and plain data: not loaded {completed}") from None


def _build_model(run_dir: Path, config: dict, state_dict: dict, where: str) -> TransformerLM:
    try:
        model = TransformerLM(TransformerConfig.from_dict(config))
    except InvalidConfig as exc:  # a plugin component not registered in this process
        imports = _experiment_imports(run_dir)
        hint = f"; import its plugin modules first ({', '.join(imports)})" if imports else ""
        raise LoadError(f"{where}: its model config cannot be built here: {exc}{hint}") from None
    weights = {k[len(STATE_PREFIX):]: v for k, v in state_dict.items() if k.startswith(STATE_PREFIX)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise LoadError(f"{where}: the checkpoint's weights do not fit its model config: {exc}") from None
    return model.eval()


def _read_tokenizer(path: Path, vocab_size: int, where: str, completed: str) -> Tokenizer:
    if not path.is_file():
        raise LoadError(f"{where}: missing tokenizer {path} (the run folder keeps the tokenizer it trained with "
                        f"there) {completed}")
    try:
        tokenizer = Tokenizer(path)
    except (OSError, RuntimeError) as exc:  # sentencepiece raises RuntimeError on a damaged model file
        raise LoadError(f"{where}: unreadable tokenizer {path}: {exc} {completed}") from None
    if tokenizer.vocab_size != vocab_size:
        raise LoadError(f"{where}: tokenizer {path} has {tokenizer.vocab_size} pieces, the model {vocab_size} {completed}")
    return tokenizer


def _experiment_imports(run_dir: Path) -> list[str]:
    """The experiment's ``imports:`` as its run folder recorded them (experiment.yaml); [] if unreadable."""
    try:
        spec = yaml.safe_load((run_dir / "experiment.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    imports = spec.get("imports") if isinstance(spec, dict) else None
    return [str(m) for m in imports] if isinstance(imports, list) else []
