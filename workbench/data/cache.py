"""Content checks of cache entries: a manifest lists each file's size and sha256.

Files are written atomically and entries built under a lock (``workbench.fileio``); the manifest is
written last, and an entry whose files do not match it is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def file_record(path: Path) -> dict:
    """What the manifest stores about a file: its size and sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def matches(folder: Path, records: Any) -> bool:
    """True when every file named in `records` exists in `folder` with that size and sha256."""
    if not isinstance(records, dict) or not records:
        return False
    for name, record in records.items():
        path = folder / name
        try:
            if path.stat().st_size != record["bytes"] or file_record(path)["sha256"] != record["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True
