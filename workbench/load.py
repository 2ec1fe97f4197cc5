"""``load_run``: a trained model and its tokenizer, from the run folder alone.

Reads results.json (which runs completed), the run's final checkpoint ``last.ckpt`` (checked against the
sha256 written beside it, loaded as plain data: ``weights_only``) and the tokenizer the run folder keeps.
Neither the experiment file nor the data cache is read, so a copied folder loads anywhere. Lightning is
not imported. The folder is not trusted: the variant name, the seed and the checkpoint's tokenizer path
must lead inside it, only regular files of a bounded size are read, and the model is checked against the
checkpoint's weights before it is built (every refusal is one line, LoadError).

    import torch, workbench
    model, tokenizer = workbench.load_run("runs/ablate_norm", "rmsnorm")
    logits = model(torch.tensor([tokenizer.encode("def main():")]))
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import yaml

from components import InvalidConfig, TransformerConfig, TransformerLM

from .checkpoint_file import IDENTITY_KEY, DamagedCheckpoint, load_verified
from .data.tokenizer import Tokenizer
from .folder_safety import LIMITS, check_variant_name, inside, read_regular
from .results import RunFolderError, read_results
from .run_folder import RunFolder
from .run_groups import entry_cell
from .run_record import COMPLETED, RunRecord

STATE_PREFIX = "model."  # the Lightning module holds the TransformerLM as ``self.model``


class LoadError(RunFolderError):
    """A run that cannot be loaded; one line naming the folder, the variant, what is wrong and what exists."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def load_run(run_dir: str | Path, variant: str, seed: int | None = None) -> tuple[TransformerLM, Tokenizer]:
    """``variant``'s trained model (eval mode, CPU, float32) and its tokenizer; ``seed`` None: the first
    completed seed. Raises LoadError for a missing variant or seed, a run that did not complete, a damaged
    checkpoint, a missing tokenizer file, or a name, path or file of the folder that leads outside it."""
    run_dir = Path(run_dir)
    try:
        return _load(run_dir, run_group(read_results(run_dir / "results.json"), variant), seed)
    except LoadError:
        raise
    except RunFolderError as exc:  # read_results, or a name or path refused by folder_safety
        raise LoadError(str(exc)) from None


def _load(run_dir: Path, variant: str, seed: int | None) -> tuple[TransformerLM, Tokenizer]:
    runs = _variant_runs(run_dir, variant)
    seed = _completed_seed(run_dir, variant, runs, seed)
    where = f"{run_dir}: variant '{variant}' seed {seed}"
    completed = f"(completed seeds: {', '.join(str(s) for s in _completed(runs))})"
    path = RunFolder(run_dir).checkpoints(variant, seed) / "last.ckpt"
    path = inside(run_dir, path.relative_to(run_dir).as_posix(), run_dir / "results.json", "checkpoint")
    checkpoint = _read_checkpoint(path, run_dir, where, completed)
    identity = checkpoint.get(IDENTITY_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(identity, dict) or not {"model", "tokenizer"} <= set(identity):
        raise LoadError(f"{where}: its checkpoint records no model config and tokenizer (trained before run folders "
                        f"kept them); train it again with --restart {variant} {completed}")
    model = _build_model(run_dir, identity["model"], checkpoint.get("state_dict"), where)
    try:
        tokenizer_path = inside(run_dir, identity["tokenizer"], path, "tokenizer path")
    except RunFolderError as exc:
        raise LoadError(f"{where}: {exc} {completed}") from None
    tokenizer = _read_tokenizer(tokenizer_path, run_dir, model.config.vocab_size, where, completed)
    return model, tokenizer


def run_group(results: dict, variant: str) -> str:
    """The run group ``variant`` names in results.json: itself, or for a tuned variant (``rmsnorm``) the run
    group its verdicts use, at its optimum (``rmsnorm@lr=0.003``)."""
    entries = results.get("variants", {})
    if variant in entries:
        return variant
    chosen = [n for n, e in entries.items() if isinstance(e, dict) and "tuning" in e and entry_cell(e) == variant]
    return chosen[0] if len(chosen) == 1 else variant


def _variant_runs(run_dir: Path, variant: str) -> list[RunRecord]:
    """``variant``'s run records from results.json; its name and every seed checked (a name read from the
    file is used as a folder name: ``../other/a`` would load another folder's model)."""
    path = run_dir / "results.json"
    results = read_results(path)
    if not results:
        raise LoadError(f"{run_dir}: no results.json: not a run folder, or no run has been recorded yet")
    variants = results.get("variants", {})
    if variant not in variants:
        raise LoadError(f"{run_dir}: no variant '{variant}' (variants: {', '.join(map(str, variants)) or 'none'})")
    check_variant_name(variant, path)
    try:
        return [RunRecord.parse(run, f"{path}: variants.{variant}.runs") for run in variants[variant].get("runs", [])]
    except ValueError as exc:
        raise LoadError(str(exc)) from None


def _completed(runs: list[RunRecord]) -> list[int]:
    return [r.seed for r in runs if r.status == COMPLETED]


def _completed_seed(run_dir: Path, variant: str, runs: list[RunRecord], seed: int | None) -> int:
    """``seed`` if its run completed (the first completed seed when None), else LoadError saying why not."""
    recorded = {r.seed: r for r in runs}
    unfinished = sorted(set(RunFolder(run_dir).seeds_on_disk(variant)) - set(recorded))
    seeds = [f"{s} {r.status}" for s, r in sorted(recorded.items())] + [f"{s} unfinished" for s in unfinished]
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
    record = recorded[seed]
    if record.status != COMPLETED:
        error = f" ({record.error})" if record.error else ""  # parse keeps a recorded traceback's last line
        raise LoadError(f"{where} seed {seed} did not complete: {record.status}{error} {listing}")
    return seed


def _read_checkpoint(path: Path, run_dir: Path, where: str, completed: str) -> dict:
    """The checkpoint as plain data, checked against the sha256 written beside it (``load_verified``): a
    regular file inside ``run_dir``, never a FIFO or a device."""
    try:
        return load_verified(path, root=run_dir)
    except OSError as exc:
        raise LoadError(f"{where}: cannot read {exc.filename}: {exc.strerror} {completed}") from None
    except DamagedCheckpoint as exc:
        raise LoadError(f"{where}: damaged checkpoint {path}: {exc} {completed}") from None
    except pickle.UnpicklingError:
        raise LoadError(f"{where}: {path} holds objects other than tensors and plain data: not loaded {completed}") from None
    except RunFolderError as exc:
        raise LoadError(f"{where}: {exc} {completed}") from None
    except Exception as exc:  # bytes matching their checksum that torch cannot read (written so on purpose)
        raise LoadError(f"{where}: {path} is not a checkpoint torch can read ({_first_line(exc)}) "
                        f"{completed}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _build_model(run_dir: Path, config: object, state_dict: object, where: str) -> TransformerLM:
    """The model of ``config`` holding ``state_dict``'s weights; the two are checked against each other
    on the meta device first, so a crafted config (a huge dim) never allocates memory."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise LoadError(f"{where}: its checkpoint holds no state_dict of tensors")
    try:
        config = TransformerConfig.from_dict(config)
    except InvalidConfig as exc:  # a plugin component not registered in this process
        imports = _experiment_imports(run_dir)
        hint = f"; import its plugin modules first ({', '.join(imports)})" if imports else ""
        raise LoadError(f"{where}: its model config cannot be built here: {exc}{hint}") from None
    except (TypeError, ValueError, AttributeError) as exc:  # not a mapping, or values of the wrong type
        raise LoadError(f"{where}: its checkpoint's model config is malformed: {_first_line(exc)}") from None
    weights = {k[len(STATE_PREFIX):]: v for k, v in state_dict.items() if k.startswith(STATE_PREFIX)}
    _check_weights(config, weights, where)
    model = TransformerLM(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise LoadError(f"{where}: the checkpoint's weights do not fit its model config: {exc}") from None
    return model.eval()


def _check_weights(config: TransformerConfig, weights: dict, where: str) -> None:
    """LoadError unless ``weights`` has exactly the names and shapes of ``config``'s model (built on the
    meta device: no memory). A config that cannot be built there is left to load_state_dict."""
    if config.n_layers > len(weights):  # each layer holds at least one tensor; bounds the meta build too
        raise LoadError(f"{where}: the checkpoint's weights do not fit its model config: n_layers={config.n_layers} "
                        f"but {len(weights)} tensors")
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in TransformerLM(config).state_dict().items()}
    except Exception:  # a plugin that computes in __init__: checked by load_state_dict instead
        return
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if expected == got:
        return
    problems = [f"missing {', '.join(sorted(set(expected) - set(got))[:3])}" if set(expected) - set(got) else "",
                f"unexpected {', '.join(sorted(set(got) - set(expected))[:3])}" if set(got) - set(expected) else "",
                *[f"{k}: {list(got[k])} vs {list(expected[k])}" for k in sorted(expected.keys() & got.keys())
                  if got[k] != expected[k]][:3]]
    raise LoadError(f"{where}: the checkpoint's weights do not fit its model config "
                    f"({'; '.join(p for p in problems if p)})")


def _read_tokenizer(path: Path, run_dir: Path, vocab_size: int, where: str, completed: str) -> Tokenizer:
    """The tokenizer file ``path``: a regular file inside ``run_dir`` with ``vocab_size`` pieces."""
    try:
        tokenizer = Tokenizer.from_bytes(read_regular(path, LIMITS["tokenizer"], run_dir), path)
    except FileNotFoundError:
        raise LoadError(f"{where}: missing tokenizer {path} (the run folder keeps the tokenizer it trained with "
                        f"there) {completed}") from None
    except RunFolderError as exc:
        raise LoadError(f"{where}: tokenizer {exc} {completed}") from None
    except ImportError:
        raise LoadError(f"{where}: tokenizer {path} is a tokenizer.json: reading it needs the 'tokenizers' library "
                        f"(pip install tokenizers) {completed}") from None
    except (OSError, RuntimeError) as exc:  # TokenizerFileError: the file holds no tokenizer
        raise LoadError(f"{where}: unreadable tokenizer {path}: {exc} {completed}") from None
    if tokenizer.vocab_size != vocab_size:
        raise LoadError(f"{where}: tokenizer {path} has {tokenizer.vocab_size} pieces, the model {vocab_size} {completed}")
    return tokenizer


def _experiment_imports(run_dir: Path) -> list[str]:
    """The experiment's ``imports:`` as its run folder recorded them (experiment.yaml); [] if unreadable."""
    try:
        text = read_regular(run_dir / "experiment.yaml", LIMITS["yaml"], run_dir).decode("utf-8")
        spec = yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):  # RunFolderError, UnicodeDecodeError are ValueErrors
        return []
    imports = spec.get("imports") if isinstance(spec, dict) else None
    return [str(m) for m in imports] if isinstance(imports, list) else []
