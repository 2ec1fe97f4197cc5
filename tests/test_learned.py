"""workbench.reports.analysis.learned and its gate in compare(): no verdict between models that have not learned.

Synthetic run folders (no training): the rule at its boundary, NOT_LEARNED in compare() (no interval, no seeds
needed, no multiplier, out of the Holm family and the noise pool), what results.json stores, the end-of-run table,
the scale agreement and the literature check. One e2e test trains a 12-step sweep through the runner.
"""

from __future__ import annotations

import copy
import json

import pytest

from e2e import results as read_results, write_experiment
from test_comparisons import done, log_curve, write_run_dir
from workbench.reports import compare, load_results
from workbench.reports.analysis.learned import MARGIN, has_learned, learned_text, learning
from workbench.reports.analysis.verdicts import NOT_LEARNED, UNDECIDED

FLOOR = 6.3646  # the stdlib corpus's unigram val loss in the 12-step run


def floor(value: float | None = FLOOR) -> dict:
    return {"data": {"unigram_val_loss": value}}


def test_the_rule_at_its_boundary():
    assert has_learned([6.6966], FLOOR) is False  # the 12-step run, above the floor
    assert has_learned([4.2611, 4.3185], FLOOR) is True  # the main job
    assert has_learned([FLOOR], FLOOR) is False  # learned only token frequencies: at the floor
    assert has_learned([FLOOR - MARGIN], FLOOR) is True
    assert has_learned([FLOOR - MARGIN + 1e-9], FLOOR) is False
    assert has_learned([4.30, FLOOR - 0.05], FLOOR) is False  # every completed seed must be clearly below
    assert has_learned([float("nan")], FLOOR) is False
    assert has_learned([4.3], None) is None and has_learned([], FLOOR) is None  # unknown, not guessed
    assert MARGIN == 0.1


def test_learning_reads_completed_runs_and_the_recorded_floor(tmp_path):
    groups = {"base": {"runs": {0: ("completed", 6.70, None), 1: ("diverged", 9.0, None), 2: ("completed", 6.65, None)},
                       **floor()},
              "v": {"runs": done([4.3, 4.2, 4.25]), **floor(None)}}
    results = load_results(write_run_dir(tmp_path, groups))
    base, v = (learning(g) for g in results.variants)
    assert (base.learned, base.floor, base.worst) == (False, FLOOR, 6.70)
    assert (v.learned, v.floor, v.worst) == (None, None, 4.3)
    assert learned_text(base) == ("not learned yet (worst seed 6.7000, unigram floor 6.3646: not 0.1 nats below it); "
                                  "train more steps")
    assert learned_text(v) == "unknown: no unigram floor recorded"


def test_a_comparison_with_a_side_that_has_not_learned_gets_no_verdict(tmp_path):
    # Both above the floor and a clear, consistent difference (+0.028 each seed): better/worse before this gate.
    base = [6.6966, 6.7001, 6.6932]
    groups = {"base": {"runs": {s: ("completed", x, log_curve([1e3, 2e3])) for s, x in enumerate(base)}, **floor()},
              "v": {"runs": {s: ("completed", x + 0.028 + 0.0005 * s, log_curve([1e3, 2e3])) for s, x in enumerate(base)},
                    **floor()}}
    c = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["v"]
    assert c.verdict == NOT_LEARNED and c.n == 3 and c.mean == pytest.approx(0.0285)
    assert (c.low, c.high, c.level, c.diff_std, c.df, c.seeds_needed, c.multiplier) == (None,) * 7
    record = json.loads(json.dumps(c.as_json()))
    assert record["learned"] == {"variant": False, "baseline": False, "floor": FLOOR, "margin": MARGIN}
    assert record["verdict"] == "not learned yet" and record["estimable"] is False


def test_one_side_not_learned_is_enough(tmp_path):
    groups = {"base": {"runs": done([6.50, 6.52, 6.48]), **floor()}, "v": {"runs": done([4.3, 4.2, 4.25]), **floor()}}
    c = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["v"]
    assert c.verdict == NOT_LEARNED and c.as_json()["learned"]["variant"] is True
    assert c.as_json()["learned"]["baseline"] is False


def test_a_not_learned_comparison_costs_the_others_nothing(tmp_path):
    """The learned pair's verdict, level, interval and noise are those of a folder without the unlearned group: it
    is out of the Holm family (m = 1, level 1 - alpha) and out of the noise pool."""
    base = [4.30, 4.35, 4.28]
    learned = {"base": {"runs": done(base), **floor()},
               "a": {"runs": done([x - 0.05 + e for x, e in zip(base, (0.004, -0.003, 0.001))]), **floor()}}
    stuck = {"stuck": {"runs": done([6.9, 6.4, 7.3]), **floor()}}
    alone = compare(load_results(write_run_dir(tmp_path / "alone", copy.deepcopy(learned))), tmp_path / "alone")
    both = compare(load_results(write_run_dir(tmp_path / "both", {**learned, **stuck})), tmp_path / "both")
    assert both["stuck"].verdict == NOT_LEARNED
    a, b = alone["a"], both["a"]
    assert (b.verdict, b.level, b.low, b.high, b.df, b.diff_std) == (a.verdict, a.level, a.low, a.high, a.df, a.diff_std)
    assert a.level == pytest.approx(0.95) and a.verdict == "better"


def test_an_unknown_floor_decides_as_before_and_says_so(tmp_path):
    base = [3.20, 3.25, 3.22]
    groups = {"base": {"runs": done(base)}, "v": {"runs": done([x + 0.1 + 0.002 * s for s, x in enumerate(base)])}}
    c = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["v"]
    assert c.verdict == "worse" and c.as_json()["learned"] == {"variant": None, "baseline": None, "floor": None,
                                                               "margin": MARGIN}


def test_the_end_of_run_table_says_not_learned_with_the_floor_and_lists_only_what_ran(tmp_path):
    from workbench.run_summary import results_table

    groups = {"base": {"runs": done([6.6966, 6.7001]), **floor()},
              "v": {"runs": done([6.7245, 6.7290]), **floor()},
              "skipped": {"runs": {}, **floor()}}  # left out by --variant: no run record in this folder
    run_dir = write_run_dir(tmp_path, groups, seeds=[0, 1])
    lines = results_table(run_dir)
    rows = {line.split()[0]: line for line in lines[2:4]}
    assert rows["v"].rstrip().endswith(NOT_LEARNED) and "(no interval: not learned yet)" in rows["v"]
    assert rows["base"].rstrip().endswith("baseline")
    text = "\n".join(lines)
    assert "skipped" not in "\n".join(lines[:4]) and "n/a (no completed run)" not in text
    assert "not run in this folder (left out by --variant, or not started): skipped" in text
    assert ("v: not learned yet (worst seed 6.7290, unigram floor 6.3646: not 0.1 nats below it); train more steps"
            in text)
    assert "more training steps (train.steps) can" in text


def test_the_end_of_run_table_names_the_floor_every_group_beat(tmp_path):
    from workbench.run_summary import results_table

    groups = {"base": {"runs": done([4.30, 4.35]), **floor()}, "v": {"runs": done([4.28, 4.31]), **floor()}}
    text = "\n".join(results_table(write_run_dir(tmp_path, groups, seeds=[0, 1])))
    assert "every run group has learned: each completed seed ends at least 0.1 nats below the unigram floor " \
           "(6.3646 nats/token)" in text and NOT_LEARNED not in text


def test_a_not_learned_pair_is_no_claim_in_the_literature_check(tmp_path):
    from workbench.reports.literature import agreement

    groups = {"base": {"runs": done([6.6966, 6.7001, 6.69]), **floor()},
              "v": {"runs": done([6.60, 6.61, 6.59]), **floor()}}
    c = compare(load_results(write_run_dir(tmp_path, groups)), tmp_path)["v"]
    assert agreement("better", -0.1, c) == NOT_LEARNED


@pytest.mark.e2e
def test_a_12_step_sweep_is_not_learned_yet_and_gets_no_more_seeds(tmp_path, cache, caplog):
    """Through the runner: 12 steps of a tiny model stay above the unigram floor; no better/worse, and the
    sequential policy adds no seed to a comparison more seeds cannot decide."""
    from workbench.cli import main

    exp = write_experiment(tmp_path, cache, steps=12, seeds={"min": 1, "max": 2})
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="workbench"):
        assert main(["run", str(exp), "--out", str(out)]) == 0
    data = read_results(out)
    ln = data["variants"]["ln"]
    # One seed is undecided, which would get a second; not learned yet gets none: more seeds cannot decide it.
    assert [r["seed"] for r in ln["runs"]] == [0]
    floor_ = ln["data"]["unigram_val_loss"]
    assert all(r["final_val_loss"] > floor_ - MARGIN for r in ln["runs"] + data["variants"]["rms"]["runs"])
    c = ln["comparison"]
    assert c["verdict"] == NOT_LEARNED and c["low"] is None and c["seeds_needed"] is None
    assert c["learned"] == {"variant": False, "baseline": False, "floor": floor_, "margin": MARGIN}
    table = caplog.text[caplog.text.index("results of tiny"):]
    assert f"unigram floor {floor_:.4f}" in table and "ln " in table and NOT_LEARNED in table
    assert "better" not in table and "worse" not in table and UNDECIDED not in table
