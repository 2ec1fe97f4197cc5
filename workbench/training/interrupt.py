"""Ctrl-C during training behaves like SIGTERM: the step finishes, last.ckpt is saved, exit 130.

Lightning turns a KeyboardInterrupt inside ``fit`` into ``sys.exit(1)`` with nothing saved. Its
SIGTERM path instead lets the current step finish and raises SIGTERMException, which the run
handles (save, resume hint). So SIGINT is re-sent as SIGTERM while ``fit`` runs; a second Ctrl-C
stops at once (checkpoints are written atomically, so nothing already saved is damaged).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("workbench")


class Flag:
    """Truthy once Ctrl-C was pressed."""

    def __init__(self):
        self.raised = False

    def __bool__(self) -> bool:
        return self.raised


@contextmanager
def interrupt_as_sigterm() -> Iterator[Flag]:
    flag = Flag()
    if threading.current_thread() is not threading.main_thread():  # signals can only be set there
        yield flag
        return

    def on_sigint(signum, frame):
        if flag.raised:
            log.error("second Ctrl-C: stopping now, without saving the current step")
            os._exit(130)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt  # Lightning is not listening for SIGTERM yet (setup): nothing to save
        flag.raised = True
        log.warning("Ctrl-C: finishing the current step and saving a checkpoint (Ctrl-C again to stop at once)")
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
