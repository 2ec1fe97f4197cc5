"""Checkpoints through Lightning: written atomically with their checksum (``workbench.checkpoint_file``),
loaded verified and as plain data, and picked safely to resume from: the newest intact one, refused when
it was trained under another config than the run's identity (resolved config + data fingerprint), or when
a candidate is not a regular file inside the checkpoint folder (a FIFO would hang the run, /dev/zero
fill its memory).
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import re
import stat
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..checkpoint_file import IDENTITY_KEY, digest_path, load_verified
from ..fileio import write_bytes, write_text
from ..folder_safety import inside
from ..results import RunFolderError, changed_keys, comparable, describe_changes, with_defaults

log = logging.getLogger("workbench")

class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialise in memory, then temp-file + fsync + os.replace in the checkpoint's own folder (Lightning's
    default moves a temp file from TMPDIR: across filesystems a non-atomic copy). Loads are weights-only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getbuffer()
        write_bytes(path, data)
        write_text(digest_path(Path(path)), hashlib.sha256(data).hexdigest() + "\n")

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_verified(Path(path), map_location or "cpu")

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)
        digest_path(Path(path)).unlink(missing_ok=True)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__


def _step_in_name(path: Path) -> int:
    match = re.search(r"step=(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _check_candidate(path: Path, ckpt_dir: Path) -> Path:
    """``path`` if it (and its checksum file, when there is one) is a regular file inside ``ckpt_dir``;
    else RunFolderError naming it. Checked before anything opens it."""
    for file in (path, digest_path(path)):
        inside(ckpt_dir, file.name, file, "checkpoint file")
        try:
            mode = file.stat().st_mode
        except FileNotFoundError:
            continue  # a missing checksum: the checkpoint is skipped as unverified
        if not stat.S_ISREG(mode):
            raise RunFolderError(f"{file}: not a regular file (a device, FIFO, socket or folder): refused; "
                                 f"remove it and run the command again")
    return path


def _peek_step(path: Path) -> int:
    """The global step a checkpoint claims, read lazily (mmap) to order candidates; -1 if unreadable.
    Call on a checked candidate only (mmap of a FIFO or device would block or fail)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:
        return _step_in_name(path)


def resume_checkpoint(ckpt_dir: Path, identity: dict | None = None) -> tuple[Path, int] | tuple[None, int]:
    """The newest checkpoint in ``ckpt_dir`` that fully loads as plain data, and its global step.

    Damaged, non-plain (pickled code) and identity-less checkpoints are skipped with a warning, falling
    back to the next newest. One that loads but was trained under another ``identity`` raises
    RunFolderError naming the changed keys, and so does a candidate (or its checksum) that is not a
    regular file inside ``ckpt_dir``. (None, 0) when nothing can be resumed.
    """
    if not ckpt_dir.is_dir():
        return None, 0
    paths = [_check_candidate(p, ckpt_dir) for p in sorted(ckpt_dir.glob("*.ckpt"))]
    candidates = sorted(((_peek_step(p), p.name == "last.ckpt", p) for p in paths), reverse=True)
    for _, _, path in candidates:
        try:
            checkpoint = load_verified(path, root=ckpt_dir)
            step = int(checkpoint["global_step"])
        except RunFolderError:  # swapped for a FIFO or device since it was checked
            raise
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
        from ..config.schema import variant_defaults

        defaults = variant_defaults()
        before = {"config": comparable(with_defaults(stored.get("config"), defaults)), "corpus": stored.get("corpus")}
        after = {"config": comparable(with_defaults(identity["config"], defaults)), "corpus": identity["corpus"]}
        if stored.get("tokenizer_sha256"):  # recorded since the tokenizer became part of a run's identity
            before["tokenizer"], after["tokenizer"] = stored["tokenizer_sha256"], identity.get("tokenizer_sha256")
        if stored["fingerprint"] != identity["fingerprint"] and changed_keys(before, after):
            changes = describe_changes(before, after)
            variant = ckpt_dir.parent.parent.name
            raise RunFolderError(
                f"{path}: this run was started under another config ({changes}); use --out for a new run folder, "
                f"or --restart {variant} to discard {variant}'s runs")
        return path, step
    return None, 0
