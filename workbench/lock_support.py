"""Whether the run folder's file system keeps ``flock`` locks, checked before a sweep writes there.

Several processes share a run folder (``--variant`` jobs, a Slurm array) because every claim, registration
and results.json update is taken under an exclusive ``flock``. A file system that accepts ``flock`` but
does not enforce it (or refuses it) would let two processes train the same run and lose results.json
updates, so the runner probes first: it takes the lock on a scratch file through one open file description
and checks that a second open file description of the same file is refused it. One host cannot see
whether the lock also holds across hosts (NFS mounted with ``local_lock=flock`` or Lustre with
``localflock`` keep it per client only): docs/cluster.md says which mounts do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .folder_safety import RunFolderError

WAY_OUT = ("put the run folder (--out) on a file system that keeps flock locks (a local disk, NFSv4, Lustre "
           "mounted with -o flock, GPFS, BeeGFS), or run one process per run folder (docs/cluster.md)")


def check_flock(out: Path, flock=None) -> None:
    """RunFolderError (exit 2) when ``out``'s file system does not make an exclusive ``flock`` exclude a second
    open file description. Probes in ``out`` or its nearest existing parent; leaves nothing behind."""
    try:
        import fcntl
    except ImportError:  # Windows: the runner has no locks there at all; one process per folder
        return
    flock = flock or fcntl.flock
    where = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    fd, path = tempfile.mkstemp(prefix=".flock-probe-", dir=where)
    other = os.open(path, os.O_RDWR)
    try:
        try:
            flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise RunFolderError(f"{where}: this file system refuses flock locks ({exc.strerror or exc}); the runner "
                                 f"needs them to share a run folder safely: {WAY_OUT}") from None
        try:
            flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # excluded: the locks work
        except OSError as exc:
            raise RunFolderError(f"{where}: flock failed on a second descriptor ({exc.strerror or exc}): {WAY_OUT}") from None
        raise RunFolderError(f"{where}: this file system accepts flock locks but does not enforce them (a second "
                             f"open of the same file took the lock too), so two processes could train the same run: "
                             f"{WAY_OUT}")
    finally:
        os.close(other)
        os.close(fd)
        os.unlink(path)
