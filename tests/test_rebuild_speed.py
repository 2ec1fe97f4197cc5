"""The paired speed table through ``report --rebuild`` (run_folder.rebuild_results), and how the report reads it.

The timing is made by the runner and kept nowhere but results.json: a rebuild keeps it while every variant it timed
is still a run group with a completed run, and otherwise says in one line that it was lost (never silently)."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.reports import load_results, write_report
from workbench.reports.speed import method_text, speed_section
from workbench.run_folder import rebuild_results

SPEED = {"method": "paired, interleaved timing", "confidence": 0.95, "device": "cpu", "rounds": 7,
         "variants": {"a": {"ms_per_step": 10.0, "tokens_per_sec": 1e4, "baseline": None, "ratio": 1.0, "low": 1.0,
                            "high": 1.0},
                      "b": {"ms_per_step": 11.0, "tokens_per_sec": 9e3, "baseline": "a", "ratio": 1.1, "low": 1.05,
                            "high": 1.15}}}


def folder(root: Path, names=("a", "b")) -> Path:
    for name in names:
        (root / name / "seed0").mkdir(parents=True)
        (root / name / "variant.json").write_text(json.dumps({"config": {}}))
        (root / name / "seed0" / "record.json").write_text(json.dumps({"seed": 0, "status": "completed",
                                                                       "final_val_loss": 3.0}))
    (root / "experiment.yaml").write_text(json.dumps({"name": "x", "baseline": "a", "seeds": [0],
                                                      "variants": {n: {} for n in names}}))
    return root


def test_rebuild_keeps_the_speed_table(tmp_path):
    run_dir = folder(tmp_path)
    (run_dir / "results.json").write_text(json.dumps({"experiment": "x", "variants": {}, "speed": SPEED}))
    assert rebuild_results(run_dir)["speed"] == SPEED
    md = write_report(run_dir).read_text()
    assert "| b | 11.00 | 9K | 1.100x [1.050, 1.150], slower | a |" in md


def test_rebuild_says_when_the_speed_table_is_lost(tmp_path):
    run_dir = folder(tmp_path)
    (run_dir / "results.json").write_text("{broken")  # often why one rebuilds
    speed = rebuild_results(run_dir)["speed"]
    assert "could not be read" in speed["lost"] and "times the variants again" in speed["lost"]
    md = write_report(run_dir).read_text()
    assert "## Speed (paired timing)\n\nreport --rebuild could not keep the paired timing: " in md
    # A timed variant no longer in the folder: not kept either.
    (run_dir / "results.json").write_text(json.dumps({"variants": {}, "speed": {**SPEED, "variants": {
        **SPEED["variants"], "gone": SPEED["variants"]["b"]}}}))
    assert "no longer has" in rebuild_results(run_dir)["speed"]["lost"]


def test_one_run_group_has_nothing_to_time_and_nothing_to_lose(tmp_path):
    run_dir = folder(tmp_path, ("a",))
    assert rebuild_results(run_dir)["speed"] is None


def test_a_ratio_the_rounds_cannot_bound_says_so_and_the_method_names_rounds(tmp_path):
    run_dir = folder(tmp_path)
    speed = {**SPEED, "rounds": 2, "variants": {**SPEED["variants"], "b": {**SPEED["variants"]["b"], "low": None,
                                                                          "high": None}}}
    (run_dir / "results.json").write_text(json.dumps({"experiment": "x", "variants": {}, "speed": speed}))
    rebuild_results(run_dir)
    results = load_results(run_dir)
    table = speed_section(results, results.variants)[1]
    assert table.rows[1][3] == "1.100x (not estimable at n = 2 rounds)"
    assert "over 2 rounds" in method_text(results) and "not over seeds" in method_text(results)
