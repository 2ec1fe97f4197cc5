"""Crash-safe checkpoints through Lightning's CheckpointIO plugin, and picking one to resume from."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..atomic import write_bytes

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialise in memory, then write temp-file + fsync + os.replace in the checkpoint's own folder.

    Lightning's default moves a temp file from TMPDIR, which across filesystems is a non-atomic copy:
    a kill there leaves a truncated ``last.ckpt``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes(path, buffer.getvalue())


def _step_of(path: Path) -> int:
    match = re.search(r"step=(\d+)", path.name)
    return int(match.group(1)) if match else -1


def resume_checkpoint(ckpt_dir: Path) -> tuple[Path, int] | tuple[None, int]:
    """The newest checkpoint in ``ckpt_dir`` that loads, and its global step; unreadable ones are
    skipped with a warning. (None, 0) when there is none."""
    if not ckpt_dir.is_dir():
        return None, 0
    candidates = sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: (p.name == "last.ckpt", _step_of(p)), reverse=True)
    for path in candidates:
        try:
            return path, torch.load(path, map_location="cpu", weights_only=False, mmap=True)["global_step"]
        except Exception as exc:  # truncated or corrupt: fall back to the previous one
            log.warning("skipping unreadable checkpoint %s (%s)", path, exc)
    return None, 0
