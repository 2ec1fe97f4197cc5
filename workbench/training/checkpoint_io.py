"""Checkpoints: written atomically with a checksum, read as plain data only, picked safely to resume from.

Each ``X.ckpt`` has ``X.ckpt.sha256`` beside it, written after it: torch.load does not check its
zip CRCs, so a file damaged in the middle would load garbage weights silently; the checksum catches
it. A checkpoint is tensors and plain containers, so every load uses ``torch.load(weights_only=True)``:
a crafted file in a shared run folder is refused, never unpickled. Each checkpoint carries the run's
identity (resolved config + data fingerprint, under ``"workbench"``), so a run is never continued
under a config other than the one it started with.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..fileio import write_bytes, write_text
from ..results import RunFolderError, changed_keys, comparable, describe_changes, with_defaults

log = logging.getLogger("workbench")

IDENTITY_KEY = "workbench"  # checkpoint[IDENTITY_KEY] = {"fingerprint": str, "config": dict, "corpus": str}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialise in memory, then temp-file + fsync + os.replace in the checkpoint's own folder (Lightning's
    default moves a temp file from TMPDIR: across filesystems a non-atomic copy). Loads are weights-only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getbuffer()
        write_bytes(path, data)
        write_text(_digest_path(Path(path)), hashlib.sha256(data).hexdigest() + "\n")

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_verified(Path(path), map_location or "cpu")

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)
        _digest_path(Path(path)).unlink(missing_ok=True)


class DamagedCheckpoint(Exception):
    """A checkpoint whose bytes do not match the checksum written with it (or that has none)."""


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_verified(path: Path, map_location="cpu") -> dict[str, Any]:
    """The whole checkpoint, checked against its checksum and loaded as plain data: objects that would
    run code on unpickling raise pickle.UnpicklingError, damaged bytes DamagedCheckpoint."""
    try:
        expected = _digest_path(path).read_text().strip()
    except OSError:
        raise DamagedCheckpoint(f"no checksum file {_digest_path(path).name} beside it") from None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise DamagedCheckpoint("its bytes do not match the checksum written with it")
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__


def _step_in_name(path: Path) -> int:
    match = re.search(r"step=(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _peek_step(path: Path) -> int:
    """The global step a checkpoint claims, read lazily (mmap) to order candidates; -1 if unreadable."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:
        return _step_in_name(path)


def variant_defaults() -> dict:
    """Every variant config key with its schema default."""
    from omegaconf import OmegaConf

    from ..config.schema import VariantSchema

    return OmegaConf.to_container(OmegaConf.structured(VariantSchema))


def resume_checkpoint(ckpt_dir: Path, identity: dict | None = None) -> tuple[Path, int] | tuple[None, int]:
    """The newest checkpoint in ``ckpt_dir`` that fully loads as plain data, and its global step.

    Damaged, non-plain (pickled code) and identity-less checkpoints are skipped with a warning, falling
    back to the next newest. One that loads but was trained under another ``identity`` raises
    RunFolderError naming the changed keys. (None, 0) when nothing can be resumed.
    """
    if not ckpt_dir.is_dir():
        return None, 0
    candidates = sorted(((_peek_step(p), p.name == "last.ckpt", p) for p in ckpt_dir.glob("*.ckpt")), reverse=True)
    for _, _, path in candidates:
        try:
            checkpoint = load_verified(path)
            step = int(checkpoint["global_step"])
        except pickle.UnpicklingError as exc:
            log.warning("refusing checkpoint %s: it holds objects other than plain data, not loaded (%s)", path, _first_line(exc))
            continue
        except Exception as exc:  # truncated or corrupt: fall back to the previous one
            log.warning("skipping damaged checkpoint %s (%s)", path, _first_line(exc))
            continue
        if identity is None:
            return path, step
        stored = checkpoint.get(IDENTITY_KEY)
        if not isinstance(stored, dict) or "fingerprint" not in stored:
            log.warning("skipping checkpoint %s: it does not record the config it was trained with", path)
            continue
        # A key the stored config lacks (added by a later version of the workbench) counts as its default.
        defaults = variant_defaults()
        before = {"config": comparable(with_defaults(stored.get("config"), defaults)), "corpus": stored.get("corpus")}
        after = {"config": comparable(with_defaults(identity["config"], defaults)), "corpus": identity["corpus"]}
        if stored["fingerprint"] != identity["fingerprint"] and changed_keys(before, after):
            changes = describe_changes(before, after)
            variant = ckpt_dir.parent.parent.name
            raise RunFolderError(
                f"{path}: this run was started under another config ({changes}); use --out for a new run folder, "
                f"or --restart {variant} to discard {variant}'s runs")
        return path, step
    return None, 0
