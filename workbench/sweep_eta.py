"""How far a sweep is: runs done of those planned, time elapsed, and time left estimated from throughput.

The estimate prices every run still to train at the training throughput (tokens per wall-clock second,
start-up and evaluations included) that its variant's finished runs reached in this invocation, else the
mean of all finished runs, else, while the first run trains, that run's own rate since its first logged
step. Before any of these exists the time left is unknown and printed so. The clock is injected (tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _Planned:
    steps: int
    tokens_per_step: int


def format_duration(seconds: float) -> str:
    """45 -> '45s', 725 -> '12m05s', 11520 -> '3h12m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class SweepEta:
    """The runs of one invocation (``plan`` may be called once per round), which of them are done, and
    the measured throughput of the finished ones."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock  # seconds, monotonic
        self.started = clock()
        self.planned: dict[tuple[str, int], _Planned] = {}
        self.done: set[tuple[str, int]] = set()
        self.measured: dict[str, list[float]] = {}  # variant -> [tokens, seconds] of its finished runs
        self.current: tuple[str, int] | None = None
        self._run_t0 = 0.0
        self._first: tuple[float, int] | None = None  # (time, step) of the current run's first reported step

    def plan(self, runs: list[tuple[str, int, int, int]]) -> None:
        """Add runs (variant, seed, steps, tokens per step) to the sweep; a run already planned is kept as is."""
        for name, seed, steps, tokens_per_step in runs:
            self.planned.setdefault((name, seed), _Planned(steps, tokens_per_step))

    def skip(self, name: str, seed: int) -> None:
        """A planned run that trains nothing here (finished before, or trained by another process)."""
        self.planned.pop((name, seed), None)

    def start(self, name: str, seed: int) -> None:
        self.current, self._run_t0, self._first = (name, seed), self.clock(), None

    def finish(self, name: str, seed: int, trained_steps: int | None) -> None:
        """The run is done; with ``trained_steps`` (steps it trained in this invocation) its throughput counts."""
        key = (name, seed)
        if trained_steps and key in self.planned and self.current == key:
            seconds = self.clock() - self._run_t0
            if seconds > 0:
                tokens_s = self.measured.setdefault(name, [0.0, 0.0])
                tokens_s[0] += trained_steps * self.planned[key].tokens_per_step
                tokens_s[1] += seconds
        self.done.add(key)
        self.current = None

    def _rate(self, name: str, live: float | None) -> float | None:
        if name in self.measured:
            tokens, seconds = self.measured[name]
            return tokens / seconds
        if self.measured:
            return sum(t for t, _ in self.measured.values()) / sum(s for _, s in self.measured.values())
        return live

    def seconds_left(self, step: int | None = None) -> float | None:
        """Estimated seconds until every planned run is done; ``step``: the current run's global step. None
        while no throughput is measured."""
        live = None
        if self.current is not None and step is not None:
            now = self.clock()
            if self._first is None:
                self._first = (now, step)
            elif step > self._first[1] and now > self._first[0]:
                live = (step - self._first[1]) * self.planned[self.current].tokens_per_step / (now - self._first[0]) \
                    if self.current in self.planned else None
        total = 0.0
        for key, run in self.planned.items():
            if key in self.done:
                continue
            steps = run.steps - step if key == self.current and step is not None else run.steps
            rate = self._rate(key[0], live)
            if rate is None:
                return None
            total += max(steps, 0) * run.tokens_per_step / rate
        return total

    def line(self, step: int | None = None) -> str:
        """'sweep 2/8 runs done, 4m10s elapsed, ~12m30s left' (or 'time left unknown yet')."""
        left = self.seconds_left(step)
        done = len(self.done & self.planned.keys())
        when = f"~{format_duration(left)} left" if left is not None else "time left unknown yet"
        return f"sweep {done}/{len(self.planned)} runs done, {format_duration(self.clock() - self.started)} elapsed, {when}"
