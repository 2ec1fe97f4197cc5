"""A checkpoint file as the workbench writes it: ``X.ckpt`` plus ``X.ckpt.sha256``, read as plain data.

torch.load does not check its zip CRCs, so a file damaged in the middle would load garbage weights
silently: the checksum written beside it catches that. Every load is ``weights_only``, so a crafted file
in a shared run folder is refused, never unpickled; only regular files of a bounded size are read (a
FIFO or a symlink to /dev/zero in a checkpoint's place is refused, RunFolderError). No Lightning here:
``load_run`` reads checkpoints without importing it; training.checkpoint_io writes them through Lightning.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from .folder_safety import LIMITS, read_regular

# checkpoint[IDENTITY_KEY] = {"fingerprint", "config", "corpus", "model", "tokenizer"}: what the run was
# trained under (training.run.run_identity), checked on resume and read by load_run.
IDENTITY_KEY = "workbench"
DIGEST_LIMIT = 4096  # a .sha256 file holds 64 hex digits and a newline


class DamagedCheckpoint(Exception):
    """A checkpoint whose bytes do not match the checksum written with it (or that has none)."""


def digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_verified(path: Path, map_location="cpu", root: Path | None = None) -> dict[str, Any]:
    """The whole checkpoint, checked against its checksum and loaded as plain data: objects that would
    run code on unpickling raise pickle.UnpicklingError, damaged bytes DamagedCheckpoint, an unreadable
    file OSError; a checkpoint or checksum that is not a regular file (of at most LIMITS["checkpoint"]
    bytes, inside ``root`` when given) RunFolderError."""
    try:
        expected = read_regular(digest_path(path), DIGEST_LIMIT, root).decode("ascii", "replace").strip()
    except OSError:
        raise DamagedCheckpoint(f"no checksum file {digest_path(path).name} beside it") from None
    data = read_regular(path, LIMITS["checkpoint"], root)
    if hashlib.sha256(data).hexdigest() != expected:
        raise DamagedCheckpoint("its bytes do not match the checksum written with it")
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
