"""Log lines: time-stamped in a log file or pipe, bare in a terminal."""

from __future__ import annotations

import io
import logging
import time

from workbench.log_lines import DATE, formatter_for


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("workbench", logging.INFO, __file__, 1, "[run 1/2 rms seed0] training", None, None)
    record.created = created
    return record


def test_a_log_file_gets_a_time_stamp_and_a_terminal_does_not():
    created = 1_780_000_000.0
    stamp = time.strftime(DATE, time.localtime(created))
    assert formatter_for(io.StringIO()).format(_record(created)) == f"{stamp} [run 1/2 rms seed0] training"
    assert formatter_for(_Terminal()).format(_record(created)) == "[run 1/2 rms seed0] training"
