"""Reading a run folder without trusting it: names, paths and files from it stay inside it.

A run folder may come from someone else (a shared disk, a copy, an archive). Every name read from its
files (variant names, seed folders, a checkpoint's tokenizer path, a record's metrics path) is checked
to be a plain relative path that resolves inside the folder, and only regular files are opened, with a
size bound: a symlink to /dev/zero, a FIFO or ``../../x`` is refused in one line naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


class RunFolderError(ValueError):
    """A run folder the workbench refuses to add to or read: another experiment's, other configs, an
    unreadable results.json, or a name or file that would lead outside it. One line naming the file."""


# Names the run folder itself uses at its top level: a variant may not take one of them.
RESERVED = frozenset({"results.json", "experiment.yaml", "report.md", "report.html", "plots", "tokenizer",
                      ".results.lock", ".folder.lock", "samples.json"})

MB = 2**20
LIMITS = {"json": 64 * MB, "yaml": 16 * MB, "tokenizer": 256 * MB, "checkpoint": 64 * 1024 * MB, "text": 16 * MB}


def check_name(name: object, what: str, source: str | os.PathLike) -> str:
    """``name`` if it is a plain file name (no separator, not ``.``/``..``, no NUL, printable), else
    RunFolderError naming ``source`` (the file the name was read from) and ``what`` it names."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\x00" in name or not name.isprintable() or len(name.encode("utf-8", "replace")) > 200):
        raise RunFolderError(f"{source}: {what} {str(name)[:80]!r} is not a plain name (no '/', '..', control "
                             f"characters or more than 200 bytes): refused")
    return name


def check_variant_name(name: object, source: str | os.PathLike) -> str:
    """A variant name: a plain name that is not one of the run folder's own files (RESERVED)."""
    check_name(name, "variant name", source)
    if name in RESERVED or name.startswith("."):
        raise RunFolderError(f"{source}: variant name {name!r} is taken by the run folder itself "
                             f"(reserved: {', '.join(sorted(n for n in RESERVED if not n.startswith('.')))}; "
                             f"no leading '.'); rename the variant")
    return name


def inside(root: str | os.PathLike, relative: object, source: str | os.PathLike, what: str = "path") -> Path:
    """``root / relative`` for a relative POSIX path read from ``source`` that stays inside ``root``
    (no absolute path, no ``..``, and symlinks resolved inside ``root``); else RunFolderError."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        raise RunFolderError(f"{source}: {what} {str(relative)[:80]!r} is not a relative path inside the run folder")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or any(p in ("..", ".") for p in parts):
        raise RunFolderError(f"{source}: {what} {relative[:80]!r} leads outside the run folder "
                             f"(absolute or '..'): refused")
    root = Path(root)
    path = root.joinpath(*parts)
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise RunFolderError(f"{source}: {what} {relative[:80]!r} resolves to {resolved}, outside the run folder "
                             f"{resolved_root}: refused")
    return path


def read_regular(path: str | os.PathLike, limit: int, root: str | os.PathLike | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes (inside ``root`` when given,
    symlinks resolved). Never blocks on a FIFO or reads a device. FileNotFoundError when missing;
    RunFolderError for a non-regular, oversized or escaping file."""
    path = Path(path)
    if root is not None:
        resolved_root, resolved = Path(root).resolve(), path.resolve()
        if resolved != resolved_root and resolved_root not in resolved.parents:
            raise RunFolderError(f"{path}: resolves to {resolved}, outside the run folder {resolved_root}: refused")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RunFolderError(f"{path}: not a regular file (a device, FIFO, socket or folder): refused")
        if info.st_size > limit:
            raise RunFolderError(f"{path}: {info.st_size} bytes, more than the {limit} this file may hold: refused")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 16 * MB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise RunFolderError(f"{path}: grew past the {limit} bytes this file may hold while being read: refused")
        return data
    finally:
        os.close(fd)
