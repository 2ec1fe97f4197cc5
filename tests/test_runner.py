"""The runner's waiting: ranks other than 0 wait for rank 0's records with a timeout, on an injected clock."""

from __future__ import annotations

import pytest

from workbench.experiment import wait_for_records
from workbench.folder_safety import RunFolderError
from workbench.results import ResultsStore


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_rank_waiting_for_a_dead_rank_zero_stops_with_one_line(tmp_path):
    clock = FakeClock()
    store = ResultsStore(tmp_path)
    store.update(lambda data: data["variants"].update(a={"runs": [{"seed": 0, "status": "completed"}]}))
    with pytest.raises(RunFolderError, match=r"rank 0 recorded no result for a seed1 within 30 s"):
        wait_for_records(store, [("a", 0), ("a", 1)], timeout_s=30, clock=clock, sleep=clock.sleep)
    assert 30 < clock.now <= 31


def test_a_rank_stops_waiting_once_every_record_is_there(tmp_path):
    clock = FakeClock()
    store = ResultsStore(tmp_path)

    def rank_zero_records(seconds):
        clock.sleep(seconds)
        if clock.now >= 2:
            store.update(lambda data: data["variants"].update(a={"runs": [{"seed": 0, "status": "completed"}]}))

    wait_for_records(store, [("a", 0)], timeout_s=30, clock=clock, sleep=rank_zero_records)
    assert clock.now == 2
