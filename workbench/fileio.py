"""Crash- and race-safe files: atomic writes, advisory locks, and cleaning what a kill left behind.

Every write goes to a uniquely named temp file in the target's own folder, is fsynced, then
``os.replace``d over the target: a reader, or a process killed mid-write, sees the old file or the
new one, never half of one. A failed write (full disk, no permission) removes its temp file. A temp
file (or a staging folder, ``staging_folder``) names its host and process, so a later run can delete the
ones whose writer is dead. Files read back (``read_json``) and lock files must be regular files: a FIFO,
a device or a folder put in their place is refused in one line (RunFolderError), never read or blocked on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .folder_safety import LIMITS, RunFolderError, read_regular

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; atomic replaces still keep every file whole
    fcntl = None

# A full disk, a read-only or forbidden folder: errors of the machine, not of one run or file.
STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, fsync it, then atomically replace ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # write/fsync errors name no file: say which one could not be written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``, or None when it is missing, unreadable, not a regular file of at most
    LIMITS["json"] bytes (a FIFO or /dev/zero is never read) or not an object."""
    try:
        obj = json.loads(read_regular(path, LIMITS["json"]).decode("utf-8"))
    except (OSError, ValueError):  # RunFolderError and UnicodeDecodeError are ValueErrors
        return None
    return obj if isinstance(obj, dict) else None


@contextlib.contextmanager
def locked(lock_path: str | os.PathLike, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive advisory lock on the file ``lock_path`` (created if missing).

    Yields True once held. With ``wait=False`` it yields False at once when another process holds
    it. The lock dies with its process, so a killed holder never blocks anyone. A folder, symlink,
    FIFO or device in the lock file's place is refused with RunFolderError naming it.
    """
    lock_path = Path(lock_path)
    if fcntl is None:
        yield True
        return
    fd = _open_lock(lock_path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_lock(lock_path: Path) -> int:
    """A descriptor of the regular file ``lock_path`` (created with its folders if missing), never following
    a symlink or blocking on a FIFO; RunFolderError (one line) for anything else in its place."""
    refused = f"{lock_path}: the lock file is not a regular file"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(lock_path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        if exc.errno in STORAGE_ERRORS:
            raise
        what = {errno.EISDIR: "a folder", errno.ELOOP: "a symlink"}.get(exc.errno, exc.strerror)
        raise RunFolderError(f"{refused} ({what}): remove it and run the command again") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunFolderError(f"{refused} (a FIFO, socket or device): remove it and run the command again")
    return fd


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete temp files and staging folders under ``folder`` (only its direct children when not
    ``recursive``) written by a process of this host that no longer runs."""
    folder = Path(folder)
    found = sorted(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"))
    removed = []
    for path in found:
        match = _TEMP.match(path.name)
        if not match or match["host"] != _HOST or _alive(int(match["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def staging_folder(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A new empty folder in ``parent`` to fill and then rename into place (``os.replace(staging, dest)``).

    Named like a temp file (``.NAME.HOST.PID.XXXXXXXX.tmp``), so ``remove_stale_temps`` deletes it once its
    writer is dead (a kill -9); removed here on any exception, Ctrl-C included, and on SIGTERM, which
    raises SystemExit(143) while the folder is held. Made with the umask's permissions (not mkdtemp's 0700).
    """
    parent = Path(parent)
    staging = parent / f".{name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    previous = _exit_on_sigterm()
    try:
        staging.mkdir()
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signal.SIGTERM)


def _exit_on_sigterm():
    """Make SIGTERM raise SystemExit(143) (so ``finally`` blocks run) where it would kill the process
    outright; the handler it replaced, or None when it left the handler as it was."""
    if threading.current_thread() is not threading.main_thread():  # signals can only be set there
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:  # someone handles it already (Lightning)
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, without changing it; else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_permissions(folder: str | os.PathLike) -> None:
    """Give ``folder`` and everything in it the permissions a plain mkdir / open would: 0777 / 0666 less the
    umask (tempfile's 0700 / 0600 would hide an export from the group and others the umask allows)."""
    mask = current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):  # symlinks (none are written) are left alone
        for name, mode in [(d, 0o777) for d in dirs] + [(f, 0o666) for f in files]:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, mode & ~mask)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; some filesystems refuse directory fsync, which is harmless here."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
