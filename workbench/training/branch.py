"""WSD horizon branches: a run that starts from a longer run's checkpoint at its own decay start.

Under ``train.schedule: wsd``, runs whose configs differ only in ``train.steps`` follow one trajectory at one
seed until the shorter one's cool-down begins: the same initial weights, the same batches (the batch at step
k is a function of seed and k), the same learning rates (``config.schedule``). So a longer run (the trunk)
keeps a checkpoint ``branch-step=S.ckpt`` at each shorter horizon's decay start S, evaluating up to there
wherever that horizon's own run would; and the shorter run (the branch) begins from it. Its first checkpoint
is the trunk's, under the branch's own identity, with the trunk's curves up to S as its own run records them
(``callbacks.curves_as_recorded``), the learning rate of its own schedule and the trunk it came from; written
into the branch's own checkpoint folder (the same file name), it is then resumed like any run's checkpoint,
and so is every later one after a kill. Which runs form a family, and in which order they train, is the runner's (``workbench.horizon_sweep``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from ..checkpoint_file import IDENTITY_KEY, digest_path, load_verified
from ..config.schedule import decay_start, lr_factor
from ..config.schema import TrainSettings, variant_defaults
from ..results import changed_keys, comparable, with_defaults
from .callbacks import RunRecorder, curves_as_recorded, eval_schedule
from .checkpoint_io import AtomicCheckpointIO

log = logging.getLogger("workbench")


@dataclass(frozen=True)
class Horizon:
    """A run's place in its WSD horizon family: the shorter horizons' train settings (a checkpoint kept at each
    one's decay start) and the longer runs it may start from, as (run group, checkpoint folder), longest first."""

    shorter: tuple[TrainSettings, ...] = ()
    trunks: tuple[tuple[str, Path], ...] = ()


def branch_file(step: int) -> str:
    """The trunk's checkpoint at a branch's decay start (``step=`` in the name, as Lightning's checkpoints)."""
    return f"branch-step={step}.ckpt"


def branch_points(horizon: Horizon) -> tuple[frozenset[int], frozenset[int]]:
    """(the steps a trunk keeps a checkpoint at, the validation steps it adds): each shorter horizon's decay
    start (none at step 0: that horizon is all cool-down) and its own evaluation steps up to there."""
    starts = [(t, decay_start(t.steps, t.cooldown)) for t in horizon.shorter]
    evals = {s for t, start in starts for s in eval_schedule(t.steps, t.eval_every) if s <= start}
    return frozenset(start for _, start in starts if start > 0), frozenset(evals)


class KeepBranchPoints(L.Callback):
    """Saves the trunk's checkpoint at each of ``steps`` (after the RunRecorder, so the step's evaluation is in it)."""

    def __init__(self, ckpt_dir: Path, steps: frozenset[int]):
        self.ckpt_dir, self.steps = Path(ckpt_dir), steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step in self.steps:
            trainer.save_checkpoint(self.ckpt_dir / branch_file(trainer.global_step), weights_only=False)


def start_branch(horizon: Horizon, train: TrainSettings, identity: dict, ckpt_dir: Path,
                 label: str) -> tuple[Path, int, dict] | None:
    """Write the branch's first checkpoint (``branch-step=S.ckpt`` in ``ckpt_dir``) from the first longer run that
    holds one at its decay start; (its path, the step, the curves taken over), or None when none does (the run then
    trains from scratch). A trunk checkpoint that is damaged, or was trained under another config than the
    branch's but for train.steps, is skipped with a warning."""
    step = decay_start(train.steps, train.cooldown)
    for trunk, folder in horizon.trunks:
        source = folder / branch_file(step)
        if not source.exists() and not digest_path(source).exists():
            continue
        try:
            checkpoint = load_verified(source, root=folder)
            problem = _mismatch(checkpoint, identity, step)
            branch = None if problem else _as_branch(checkpoint, train, identity, trunk, step)
        except Exception as exc:  # damaged, unreadable or not a run's checkpoint: the next trunk, or from scratch
            problem = f"{type(exc).__name__}: {str(exc).strip()[:160]}"
        if problem:
            log.warning("[%s] not branching from %s: %s", label, source, problem)
            continue
        target = ckpt_dir / branch_file(step)
        AtomicCheckpointIO().save_checkpoint(branch, target)
        log.info("[%s] branching off %s at step %d: trains its %d cool-down steps", label, trunk, step, train.steps - step)
        return target, step, branch["callbacks"][RunRecorder.STATE_KEY]["curves"]
    return None


def _mismatch(checkpoint: dict, identity: dict, step: int) -> str | None:
    """Why the trunk's checkpoint cannot start this branch (None: it can): another step, another corpus or
    tokenizer, or a config that differs in more than train.steps."""
    if int(checkpoint["global_step"]) != step:
        return f"it holds step {checkpoint['global_step']}, not {step}"
    stored = checkpoint.get(IDENTITY_KEY)
    if not isinstance(stored, dict):
        return "it does not record the config it was trained with"
    defaults = variant_defaults()
    configs = [comparable(with_defaults(c, defaults)) for c in (stored.get("config"), identity["config"])]
    for config in configs:
        if isinstance(config, dict) and isinstance(config.get("train"), dict):
            config["train"] = {k: v for k, v in config["train"].items() if k != "steps"}
    changes = changed_keys({"config": configs[0], "corpus": stored.get("corpus"), "tokenizer": stored.get("tokenizer_sha256")},
                           {"config": configs[1], "corpus": identity["corpus"], "tokenizer": identity.get("tokenizer_sha256")})
    return f"trained under another config ({'; '.join(changes[:3])})" if changes else None


def _as_branch(checkpoint: dict, train: TrainSettings, identity: dict, trunk: str, step: int) -> dict:
    """The trunk's checkpoint as the branch's own at ``step``: its identity, its recorder state (the trunk's
    curves as the branch records them, where it branched from) and its schedule's learning rate (equal to the
    trunk's at a decay start, set here so it holds by construction). Other callbacks' states (the trunk's
    ModelCheckpoint, which names the trunk's folder) are left out: they start afresh, as in a new run."""
    recorder = dict(checkpoint["callbacks"][RunRecorder.STATE_KEY])
    recorder["curves"] = curves_as_recorded(recorder["curves"], train, step)
    recorder["branched_from"] = {"run_group": trunk, "step": step}
    factor = lr_factor(step, train)
    for optimizer, schedule in zip(checkpoint["optimizer_states"], checkpoint["lr_schedulers"]):
        rates = [base * factor for base in schedule["base_lrs"]]
        for group, rate in zip(optimizer["param_groups"], rates):
            group["lr"] = rate
        schedule["_last_lr"] = rates
    return {**checkpoint, IDENTITY_KEY: identity, "callbacks": {RunRecorder.STATE_KEY: recorder}}
