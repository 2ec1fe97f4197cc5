"""Which process of a multi-process run this is: rank 0 alone claims runs and writes the run folder."""

from __future__ import annotations

import os


def is_global_zero() -> bool:
    """True in the one process that writes results.json and the report: a single process, or rank
    0 of a multi-process run (Lightning's own launcher sets LOCAL_RANK/NODE_RANK, not RANK)."""
    return all(int(os.environ.get(k, "0")) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))
