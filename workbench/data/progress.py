"""Ingestion progress: a redrawn bar with rate and ETA on a terminal, a plain log line every few
seconds otherwise (CI logs, files), nothing for work that ends quickly."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("workbench.data")

REDRAW_SECONDS = 0.2  # terminal
LOG_SECONDS = 5.0  # plain lines
QUIET_SECONDS = 1.0  # nothing is shown before this: a cached or tiny corpus prints no bar


class Progress:
    """`advance(nbytes, docs)` as work is done; `total_bytes` (None: unknown) gives the ETA."""

    def __init__(self, label: str, total_bytes: int | None, total_docs: int | None = None,
                 stream: TextIO | None = None):
        self.label, self.total_bytes, self.total_docs = label, total_bytes, total_docs
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bytes = self.docs = self._resumed_bytes = 0  # resumed bytes: not counted in the rate
        self.start = self.last = time.monotonic()
        self._drawn = False

    def resume(self, done_bytes: int) -> None:
        """Work already done by an interrupted run: counted in the bar, not in the rate."""
        self.bytes = self._resumed_bytes = done_bytes

    def advance(self, nbytes: int = 0, docs: int = 0) -> None:
        self.bytes += nbytes
        self.docs += docs
        now = time.monotonic()
        if now - self.start < QUIET_SECONDS or now - self.last < (REDRAW_SECONDS if self.tty else LOG_SECONDS):
            return
        self.last = now
        if self.tty:
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        else:
            log.info("%s", self.line(now))

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r" + self.line(time.monotonic()) + "\x1b[K\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = (self.bytes - self._resumed_bytes) / elapsed
        parts = [f"{self.label}:"]
        if self.total_bytes:
            fraction = min(self.bytes / self.total_bytes, 1.0)
            bar = "#" * int(fraction * 20)
            parts.append(f"[{bar:<20}] {fraction:6.1%} {_mb(self.bytes)}/{_mb(self.total_bytes)} MB")
        else:
            parts.append(f"{_mb(self.bytes)} MB")
        if self.docs:
            parts.append(f"{self.docs:,}" + (f"/{self.total_docs:,}" if self.total_docs else "") + " docs")
        parts.append(f"{rate / 1e6:.1f} MB/s")
        if self.total_bytes and rate > 0:
            parts.append(f"ETA {_duration((self.total_bytes - self.bytes) / rate)}")
        return "  ".join(parts)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
