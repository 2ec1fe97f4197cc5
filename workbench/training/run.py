"""Train one (variant, seed) with Lightning and return its results.json record.

Everything the run writes lives in its own folder ``RUN_DIR/<variant>/seed<k>/``: TensorBoard events,
``hparams.yaml``, ``checkpoints/``, ``metrics.json`` and, once finished, ``record.json``; the tokenizer it
trained with is kept once per data config in ``RUN_DIR/tokenizer/``, so the folder is usable without the
data cache or the experiment file (``workbench.load_run``). Calling this again on an
interrupted folder resumes from the newest checkpoint that loads and was trained under the same config.
"""

from __future__ import annotations

import logging
import resource
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from components import TransformerConfig, TransformerLM
from ..config.budget import world_size
from ..config.schedule import decay_start
from ..config.schema import TrainSettings, variant_defaults
from ..config.specs import flat_config
from ..data import TokenData, batch_fingerprint, val_batches
from ..fileio import write_json, write_text
from ..results import ResultsStore
from ..run_folder import RunFolder, identity
from ..run_record import RunRecord
from ..sweep_eta import SweepEta
from . import tensorboard
from .allocator import keep_freed_memory
from .batches import StepBatches
from .branch import Horizon, KeepBranchPoints, branch_points, start_branch
from .callbacks import RunRecorder
from .checkpoint_io import resume_checkpoint
from .interrupt import interrupt_as_sigterm
from .length_eval import length_losses
from .module import Diverged, LMModule, eval_forward, evaluate
from .progress import RunProgressBar
from .trainer import build_trainer, run_callbacks

log = logging.getLogger("workbench")

# Lightning's chatter that says nothing about this run.
for _pattern in (".*does not have many workers.*", ".*Checkpoint directory.*exists and is not empty.*",
                 ".*IterableDataset.*__len__.*", ".*TensorBoard.*tensorboardX.*", ".*`training_step` returned.*",
                 r".*isinstance\(treespec, LeafSpec\).*",
                 ".*The `srun` command is available on your system but is not used.*"):  # a login node, or a Slurm task of --launcher slurm
    warnings.filterwarnings("ignore", message=_pattern)
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def hparam_values(config: dict) -> dict:
    """A stored config as TensorBoard HPARAMS columns: ``model/norm`` (a component spec one column,
    whether or not it has options), every value a scalar or its text; an unset key (None) stays None, so
    its column is left out rather than filled with the text 'None'."""
    return {key.replace(".", "/"): value if value is None or isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in flat_config(config).items()}


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: CUDA allocator peak on GPU, the process's peak RSS on CPU (an upper bound)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def tokenizer_file(data: TokenData) -> str:
    """Where a run folder keeps the tokenizer of ``data``, relative to the folder: one file per data config."""
    return f"tokenizer/{data.fingerprint}.model"


def run_identity(variant, data: TokenData, model_config: TransformerConfig) -> dict:
    """What a run is trained under (``run_folder.identity``: the variant's resolved config, the corpus
    fingerprint and the tokenizer's sha256, hashed). Stored in every checkpoint; resuming under a different
    identity is refused. It also carries what rebuilds the model from the checkpoint alone: the model's
    resolved config (vocab_size included) and the run folder's tokenizer file (both follow from the rest)."""
    config = variant.to_dict()
    ident = identity(config, data.fingerprint, data.tokenizer.sha256, variant_defaults())
    return {"fingerprint": ident["fingerprint"], "config": config, "corpus": data.fingerprint,
            "tokenizer_sha256": data.tokenizer.sha256, "model": model_config.to_dict(), "tokenizer": tokenizer_file(data)}


def keep_run_files(run_dir: Path, variant, seed: int, data: TokenData, identity: dict) -> None:
    """The run folder's own copy of the tokenizer, and the seed folder's ``hparams.yaml`` (Lightning's
    file, shown by TensorBoard): the resolved model config, data and train settings. Idempotent, atomic."""
    data.tokenizer.save(run_dir / identity["tokenizer"])
    hparams = {"variant": variant.name, "seed": seed, "model": identity["model"], "data": variant.data,
               "train": variant.train.as_dict(), "corpus": identity["corpus"], "tokenizer": identity["tokenizer"]}
    write_text(RunFolder(run_dir).hparams_file(variant.name, seed), yaml.safe_dump(hparams, sort_keys=False))


@dataclass
class Run:
    """One (variant, seed) ready to fit: its model, trainer, recorder and where it resumes from."""

    variant: object  # workbench.config.Variant
    seed: int
    data: TokenData
    folder: Path
    label: str
    module: LMModule
    trainer: L.Trainer
    recorder: RunRecorder
    logger: TensorBoardLogger
    resume: Path | None
    resumed_step: int

    @property
    def ckpt_dir(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def tokens_per_step(self) -> int:
        return self.variant.train.tokens_per_step


def replay_curves(logger: TensorBoardLogger, curves: dict) -> None:
    """A branch's curve points taken over from its trunk into its own TensorBoard events (training loss,
    learning rate, validation loss), so its curves there start at step 0 as every other run's do."""
    for point in curves["train"]:
        logger.log_metrics({tensorboard.TRAIN_LOSS: point["loss"], tensorboard.LR: point["lr"]}, step=point["step"])
    for point in curves["val"]:
        logger.log_metrics({tensorboard.VAL_LOSS: point["loss"]}, step=point["step"])


def init_seed(seed: int, stream: int) -> int:
    """The seed of a run's initial weights: the run's seed itself in stream 0 (every existing run), else a
    draw of its own per (seed, stream) that no other seed's stream 0 reaches (seeds are below 2**32)."""
    return seed if stream == 0 else seed + (stream << 32)


def resume_point(ckpt_dir: Path, identity: dict, train: TrainSettings, horizon: Horizon,
                 label: str) -> tuple[Path | None, int, dict | None]:
    """(the checkpoint a run resumes from or None, its step, the curves a WSD branch takes over from its trunk
    or None): the run's newest own checkpoint; for a branch whose own are not past its decay start, the
    checkpoint it starts from there (``branch.start_branch``), if a longer run holds one."""
    resume, step = resume_checkpoint(ckpt_dir, identity)
    inherited = None
    if horizon.trunks and step < decay_start(train.steps, train.cooldown):
        branched = start_branch(horizon, train, identity, ckpt_dir, label)
        if branched is None:
            log.info("[%s] no longer horizon holds a checkpoint at its decay start: trains from scratch", label)
        else:
            resume, step, inherited = branched
    if resume:
        log.info("[%s] resuming from %s (step %d)", label, resume.name, step)
    return resume, step, inherited


def build_run(variant, seed: int, data: TokenData, run_dir: Path, label: str, horizon: Horizon = Horizon(),
              eta: SweepEta | None = None) -> Run:
    """Model, Lightning module, trainer and callbacks of one run, and the checkpoint it resumes from
    (refused with RunFolderError when that checkpoint was trained under another config). ``horizon``: its
    WSD horizon family (``training.branch``): checkpoints it keeps for shorter horizons, and, when its own
    checkpoints are not past its decay start, the longer runs whose checkpoint there it may start from.
    ``eta``: the sweep's progress, shown on the run's log lines and progress bar."""
    train = variant.train
    folder = RunFolder(run_dir).seed_dir(variant.name, seed)
    config = variant.transformer_config(data.tokenizer.vocab_size)
    identity = run_identity(variant, data, config)
    resume, resumed_step, inherited = resume_point(folder / "checkpoints", identity, train, horizon, label)
    keep_run_files(run_dir, variant, seed, data, identity)  # before fit: Lightning writes hparams.yaml only if absent

    L.seed_everything(seed, workers=True, verbose=False)
    model = TransformerLM(config, init_seed=init_seed(seed, train.seed_stream))
    module = LMModule(model, train, identity)
    tokens_per_step = train.tokens_per_step
    logger = TensorBoardLogger(
        save_dir=str(run_dir), name=variant.name, version=folder.name, default_hp_metric=False,
        **({"purge_step": resumed_step} if resume else {}),
    )
    if inherited is not None:
        replay_curves(logger, inherited)
    interactive = sys.stderr.isatty()  # a terminal shows a progress bar; a log file gets plain lines
    keep, also_evaluate = branch_points(horizon)
    recorder = RunRecorder(folder / "metrics.json", val_batches(data.val, train.batch_size, train.seq_len, train.eval_batches),
                           train, label, tokens_per_step, flops_per_token=model.flops_per_token(train.seq_len),
                           plain_lines=not interactive, also_evaluate=also_evaluate, eta=eta)
    callbacks = run_callbacks(recorder, folder / "checkpoints", train.checkpoint_every)
    if keep:
        callbacks.insert(callbacks.index(recorder) + 1, KeepBranchPoints(folder / "checkpoints", keep))
    if interactive:
        callbacks.append(RunProgressBar(label, recorder, eta))
    trainer = build_trainer(train, train.steps, logger, callbacks, progress_bar=interactive)
    return Run(variant, seed, data, folder, label, module, trainer, recorder, logger, resume, resumed_step)


def fit_run(run: Run) -> tuple[str, str | None]:
    """Train to ``train.steps`` (from the resume point); (status, error). SIGTERM and Ctrl-C finish the
    step, save ``last.ckpt`` and exit 143 / 130 with a resume hint."""
    trainer = run.trainer
    keep_freed_memory()
    stream = StepBatches(run.data.train, run.seed, run.variant.train.batch_size, run.variant.train.seq_len,
                         start=lambda: trainer.global_step, rank=lambda: trainer.global_rank,
                         world_size=lambda: trainer.world_size)
    try:
        with interrupt_as_sigterm() as interrupted:
            trainer.fit(run.module, train_dataloaders=DataLoader(stream, batch_size=None),
                        ckpt_path=str(run.resume) if run.resume else None)
        trainer.save_checkpoint(run.ckpt_dir / "last.ckpt", weights_only=False)
    except Diverged as exc:
        return "diverged", str(exc)
    except SIGTERMException:  # preempted, stopped or Ctrl-C: Lightning lets the step finish, then raises
        # One process saves the finished steps; with several, Lightning has already killed the other
        # ranks, so a collective save would hang: the run resumes from its last scheduled checkpoint.
        saved = trainer.world_size == 1
        if saved:
            trainer.save_checkpoint(run.ckpt_dir / "last.ckpt", weights_only=False)
        how, code = ("interrupted (Ctrl-C)", 130) if interrupted else ("terminated (SIGTERM)", 143)
        log.error("[%s] %s after step %d, %s: re-run the same command to resume", run.label, how,
                  trainer.global_step, "checkpoint saved" if saved else "not saved (multi-process)")
        raise SystemExit(code) from None  # 128 + the signal, as a killed process reports (Lightning exits 0 or 1)
    return "completed", None


FINAL_EVAL_TOKENS = 2**21  # the final val loss reads the whole split, up to this many tokens


def final_val_batches(data: TokenData, train: TrainSettings) -> list:
    """The final loss's batches: the whole validation split (evenly spread windows, capped at
    FINAL_EVAL_TOKENS), not the ``eval_batches`` subset of the curve: less noise between seeds."""
    batches = max(train.eval_batches, FINAL_EVAL_TOKENS // train.tokens_per_step)
    return val_batches(data.val, train.batch_size, train.seq_len, batches)


def record_run(run: Run, status: str, error: str | None) -> RunRecord:
    """The run's record: final losses (evaluated if the last evaluation is stale), length evaluation,
    speed, and what was trained. Written to the run's own ``record.json`` too."""
    trainer, module, recorder, train = run.trainer, run.module, run.recorder, run.variant.train
    completed = status == "completed"
    final_val = evaluate(eval_forward(trainer, module), final_val_batches(run.data, train), module.device,
                         trainer.strategy.precision_plugin.forward_context()) if completed else None
    if trainer.world_size != world_size(train):
        log.warning("[%s] %d processes trained, train.devices x num_nodes gave %d: a budget resolved into train.steps "
                    "is off by that factor (train_flops records what was trained)", run.label, trainer.world_size, world_size(train))
    steps, tokens = trainer.global_step, trainer.global_step * run.tokens_per_step * trainer.world_size
    branched = recorder.branched_from or {}
    record = RunRecord(
        seed=run.seed, status=status, error=error, identity=run.module.identity["fingerprint"],
        resumed_from_step=run.resumed_step or None, tokenizer=tokenizer_file(run.data),
        branched_from=branched.get("run_group"), branch_step=branched.get("step"), trained_steps=steps - branched.get("step", 0),
        tuned_value=run.variant.point.value if run.variant.point is not None else None,
        final_val_loss=final_val,
        last_val_loss=final_val if completed else recorder.final_val_loss,
        subset_val_loss=recorder.final_val_loss,
        final_train_loss=recorder.final_train_loss,
        val_bpb=run.data.bits_per_byte(final_val) if final_val is not None else None,
        tokens_per_sec=recorder.tokens_per_sec, steps=steps, train_tokens=tokens,
        train_flops=tokens * module.model.flops_per_token(train.seq_len),
        wall_time_s=recorder.wall_time_s, peak_memory_mb=peak_memory_mb(module.device), precision=trainer.precision,
        metrics=(run.folder / "metrics.json").relative_to(run.folder.parent.parent).as_posix(),
        batch_fingerprint=batch_fingerprint(run.data.train, run.seed, train.steps, train.batch_size, train.seq_len),
        **(_length_eval(run) if completed and run.variant.eval_lengths else {}))
    if trainer.is_global_zero:
        if final_val is not None:  # HPARAMS' metric column: the number results.json and the verdict use
            run.logger.log_metrics({tensorboard.FINAL_VAL_LOSS: final_val}, step=steps)
        run.logger.finalize("success")
        write_json(run.folder / "record.json", record.as_json())
    return record


def log_hparams(run_dir: Path, variant, record: RunRecord, verdict: str) -> None:
    """The run's TensorBoard HPARAMS row (written after the sweep's comparisons, in an event file of its
    own in the run's folder): variant, verdict and seed first, then the config keys that differ between the
    experiment's variants (marked so TensorBoard lists them next), then every other key. Its metric column,
    the final val loss on the whole split, is the scalar ``record_run`` wrote; wall-clock tokens/s, which
    is not compared between runs, stays a curve."""
    configs = {name: hparam_values(entry["config"])
               for name, entry in ResultsStore(run_dir).load().get("variants", {}).items() if "config" in entry}
    own = hparam_values(variant.to_dict())
    differing = tensorboard.differing_keys(list(configs.values()) or [own])
    config = {k: own[k] for k in sorted(own, key=lambda k: k not in differing)}
    tensorboard.write_hparams(RunFolder(run_dir).seed_dir(variant.name, record.seed),
                              {"variant": variant.name, "verdict": verdict, "seed": record.seed}, config, differing,
                              completed=record.status == "completed")


def _length_eval(run: Run) -> dict:
    trainer, module, train = run.trainer, run.module, run.variant.train
    lengths, notes = length_losses(
        module.model, run.data.val, run.variant.eval_lengths, batch_tokens=run.tokens_per_step,
        target_tokens=train.eval_batches * run.tokens_per_step, device=module.device, call=eval_forward(trainer, module),
        forward_context=trainer.strategy.precision_plugin.forward_context())
    log.info("[%s] val loss by length: %s", run.label,
             ", ".join(f"{k}: {'n/a' if v is None else f'{v:.4f}'}" for k, v in lengths.items()))
    return {"length_eval": lengths, "length_eval_notes": notes}


def train_run(variant, seed: int, data: TokenData, run_dir: Path, label: str, horizon: Horizon = Horizon(),
              eta: SweepEta | None = None) -> RunRecord:
    """Train ``variant`` (a workbench.config.Variant) with ``seed``; return its run record. ``horizon``: its
    WSD horizon family, where it keeps checkpoints for shorter horizons and may start from a longer one."""
    run = build_run(variant, seed, data, run_dir, label, horizon, eta)
    status, error = fit_run(run)
    return record_run(run, status, error)
