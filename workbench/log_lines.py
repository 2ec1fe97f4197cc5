"""How the workbench's log lines look: the bare message in a terminal (a person is watching, the progress
bar shows the time), a time stamp first when stderr goes to a file or a pipe (a batch job's log is read
later, and the gaps between lines are what tells a slow step from a stalled one)."""

from __future__ import annotations

import logging
import sys

DATE = "%Y-%m-%d %H:%M:%S"


def formatter_for(stream) -> logging.Formatter:
    """Bare messages on a terminal, ``2026-05-01 14:03:07 message`` on anything else."""
    terminal = hasattr(stream, "isatty") and stream.isatty()
    return logging.Formatter("%(message)s" if terminal else "%(asctime)s %(message)s", datefmt=DATE)


def configure_logging(verbose: bool, stream=None) -> None:
    """The root logger's handler on ``stream`` (stderr by default), time-stamped unless it is a terminal.
    Like ``logging.basicConfig``, it does nothing when the root logger already has a handler."""
    root = logging.getLogger()
    if root.handlers:
        return
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for(stream))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
