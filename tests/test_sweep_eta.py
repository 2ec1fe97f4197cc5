"""The sweep's progress line: runs done, elapsed, and time left from measured throughput (a fake clock)."""

from __future__ import annotations

from workbench.sweep_eta import SweepEta, format_duration


def test_durations_read_as_a_person_writes_them():
    assert [format_duration(s) for s in (0, 45, 725, 3600, 11520)] == ["0s", "45s", "12m05s", "1h00m", "3h12m"]


def test_time_left_comes_from_the_finished_runs_throughput_per_variant():
    now = [0.0]
    eta = SweepEta(clock=lambda: now[0])
    eta.plan([("a", 0, 100, 1000), ("a", 1, 100, 1000), ("b", 0, 100, 2000)])
    assert eta.line() == "sweep 0/3 runs done, 0s elapsed, time left unknown yet"
    eta.start("a", 0)
    now[0] = 5.0
    assert eta.seconds_left(10) is None  # one reported step: no rate yet
    now[0] = 15.0
    # live rate 20 steps x 1000 tokens / 10 s = 2000 tok/s: a0 70 steps, a1 100 steps, b0 100 steps of 2000 tokens
    assert eta.seconds_left(30) == 70 * 1000 / 2000 + 100 * 1000 / 2000 + 100 * 2000 / 2000
    now[0] = 60.0
    eta.finish("a", 0, trained_steps=100)  # 100k tokens in 60 s, start-up and evaluations included
    rate = 100 * 1000 / 60
    eta.start("a", 1)
    assert eta.seconds_left() == 100 * 1000 / rate + 100 * 2000 / rate
    assert eta.line() == "sweep 1/3 runs done, 1m00s elapsed, ~3m00s left"
    now[0] = 80.0
    eta.finish("a", 1, trained_steps=50)  # resumed at step 50: 50k tokens in 20 s
    eta.start("b", 0)
    assert eta.seconds_left() == 100 * 2000 / (150 * 1000 / 80)  # b has no run of its own: both a runs pooled
    eta.finish("b", 0, trained_steps=100)
    assert eta.line() == "sweep 3/3 runs done, 1m20s elapsed, ~0s left"


def test_a_kept_run_leaves_the_plan_and_a_later_round_adds_to_it():
    now = [0.0]
    eta = SweepEta(clock=lambda: now[0])
    eta.plan([("a", 0, 10, 10), ("b", 0, 10, 10)])
    eta.skip("a", 0)
    eta.start("b", 0)
    now[0] = 10.0
    eta.finish("b", 0, trained_steps=10)
    eta.plan([("b", 1, 20, 10), ("b", 0, 10, 10)])  # the next round: one more seed; b/0 is already done
    assert eta.line() == "sweep 1/2 runs done, 10s elapsed, ~20s left"
