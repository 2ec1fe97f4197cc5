"""The tuning section of the report (``tune:``): rendered from small hand-built results.json folders, no training."""

from __future__ import annotations

import json
import math
from pathlib import Path

from test_reports import table_rows
from workbench.reports import write_report

VOCAB = 512
INIT = math.log(VOCAB)
GRID = [0.00075, 0.0015, 0.003, 0.006, 0.012]
DIVERGED = "diverged"
BOWL = {0.00075: 4.60, 0.0015: 4.40, 0.003: 4.30, 0.006: 4.35, 0.012: 4.50}  # optimum inside, near 3.6e-3


def _entry(arch: str, size: str | None, value: float, step: int, losses: dict[int, float | str | None],
           key: str = "train.lr") -> dict:
    """One grid point's run group; losses: seed -> final val loss, DIVERGED, or None (not run yet)."""
    runs = [{"seed": s, "status": "diverged" if x == DIVERGED else "completed",
             "final_val_loss": 3.9 if x == DIVERGED else x, "tuned_value": value}  # a diverged run's last finite loss
            for s, x in losses.items() if x is not None]
    return {"arch": arch, "size": size, "tuned": {"key": key, "value": value, "step": step},
            "config": {"train": {"batch_size": 32, "seq_len": 128, "lr": value}}, "data": {"vocab_size": VOCAB},
            "runs": runs}


def make_tuned_dir(root: Path, cells: dict[tuple[str, str | None], dict[float, object]], *, baseline="rmsnorm",
                   tuning_seeds=(0,), seeds=(0, 1, 2), extend=1, sizes=None, key="train.lr") -> Path:
    """cells: (arch, size) -> {value: loss | DIVERGED | None | [loss per tuning seed]}; a value outside GRID is
    an extension (step -1 below, +1 above). Every finished point also has the verdict seeds' runs: the report
    shows only the chosen point's."""
    variants = {}
    for (arch, size), points in cells.items():
        cell = arch if size is None else f"{arch}@{size}"
        for value, loss in sorted(points.items()):
            step = 0 if value in GRID else -1 if value < GRID[0] else 1
            per_seed = dict(zip(tuning_seeds, loss if isinstance(loss, list) else [loss] * len(tuning_seeds)))
            first = per_seed[tuning_seeds[0]]
            if isinstance(first, float):  # the verdict seeds, as if this point were chosen (only the chosen is shown)
                per_seed.update({s: first + 0.01 * s for s in seeds if s not in per_seed})
            variants[f"{cell}@{key.partition('.')[2]}={value:.4g}"] = _entry(arch, size, value, step, per_seed, key)
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({
        "experiment": "tuned_norm", "baseline": baseline, "seeds": list(seeds), "variants": variants,
        "sizes": sizes, "updated": "2026-11-23T13:00:00Z",
        "tune": {"key": key, "values": None, "multipliers": [0.25, 0.5, 1, 2, 4], "seeds": len(tuning_seeds),
                 "extend": extend, "tuning_seeds": list(tuning_seeds)}}))
    return root


def section(md: str, heading: str) -> str:
    """The text of the '## heading' section, up to the next '## '."""
    start = md.index(f"## {heading}\n")
    end = md.find("\n## ", start + 1)
    return md[start:end if end >= 0 else None]


def h2(md: str) -> list[str]:
    return [line[3:] for line in md.splitlines() if line.startswith("## ")]


FALLING = {0.00075: 4.80, 0.0015: 4.60, 0.003: 4.50, 0.006: 4.45, 0.012: 4.42}  # best on the high edge
RISING = {0.00075: 4.20, 0.0015: 4.25, 0.003: 4.30, 0.006: 4.40, 0.012: 4.60}  # best on the low edge


def test_the_section_comes_first_among_the_analyses_and_draws_its_plot(tmp_path):
    md = write_report(make_tuned_dir(tmp_path / "t", {("rmsnorm", None): BOWL, ("layernorm", None): BOWL})).read_text()
    headings = h2(md)
    assert headings[:3] == ["Results", "Learning rate", "How to read this"]
    png = tmp_path / "t" / "plots" / "tuning.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](plots/tuning.png)" in section(md, "Learning rate")
    assert "each variant at its own tuned learning rate" in section(md, "Results")

    ladder = make_tuned_dir(tmp_path / "l", {("rmsnorm", None): BOWL, ("layernorm", None): BOWL})
    data = json.loads((ladder / "results.json").read_text())
    (ladder / "results.json").write_text(json.dumps({**data, "ladder": True}))
    assert h2(write_report(ladder).read_text())[:3] == ["Results", "Ladder", "Learning rate"]


def test_an_untuned_folder_has_no_tuning_section_and_loses_a_stale_plot(tmp_path):
    runs = [{"seed": 0, "status": "completed", "final_val_loss": 4.3}]
    (tmp_path / "results.json").write_text(json.dumps({
        "experiment": "plain", "baseline": "rmsnorm", "seeds": [0],
        "variants": {"rmsnorm": {"runs": runs}, "layernorm": {"runs": runs}}}))
    stale = tmp_path / "plots" / "tuning.png"
    stale.parent.mkdir()
    stale.write_bytes(b"from a tuned render")
    md = write_report(tmp_path).read_text()
    assert "Learning rate" not in h2(md) and "Tuned" not in md
    assert not stale.exists()


def test_the_table_shows_the_chosen_value_and_flags_an_edge_optimum(tmp_path):
    falling = {**FALLING, 0.024: 4.41}  # the extension above was run (extend: 1) and is better still
    md = write_report(make_tuned_dir(tmp_path, {("rmsnorm", None): BOWL, ("layernorm", None): falling,
                                                ("dyt", None): RISING})).read_text()
    table = table_rows(section(md, "Learning rate"), "Variant")
    # BOWL: the parabola through 1.5e-3, 3e-3, 6e-3 (equal steps h = ln 2 in log) has its vertex h/6 above 3e-3
    assert table["rmsnorm"][2:5] == ["3e-3", f"{0.003 * 2 ** (1 / 6):.2e}".replace("e-03", "e-3"), "4.3000"]
    assert table["rmsnorm"][6] == "" and table["rmsnorm"][7] == "complete"
    assert table["layernorm"][1] == "7.5e-4 .. 1.2e-2 (5) + 1 above"
    assert table["layernorm"][2] == "2.4e-2"
    assert table["layernorm"][6] == "on the high edge: the optimum may lie above the grid"
    assert table["dyt"][2] == "7.5e-4"  # no extension declared below: flagged at once
    assert table["dyt"][6] == "on the low edge: the optimum may lie below the grid"
    results_rows = table_rows(section(md, "Results"), "Variant")
    assert results_rows["layernorm@lr=0.024"][1] == "2.4e-2 (high edge)"
    assert results_rows["rmsnorm@lr=0.003 (baseline)"][1] == "3e-3"


def test_a_diverged_point_is_marked_and_never_starred(tmp_path):
    from matplotlib.figure import Figure

    from workbench.reports.load import load_results
    from workbench.reports.tuning_section import _panel

    diverged = {**BOWL, 0.003: DIVERGED}  # its last finite loss (3.9, the lowest of all) never counts: init does
    run_dir = make_tuned_dir(tmp_path, {("rmsnorm", None): BOWL, ("layernorm", None): diverged,
                                        ("dyt", None): {v: DIVERGED for v in GRID}})
    md = write_report(run_dir).read_text()
    table = table_rows(section(md, "Learning rate"), "Variant")
    assert table["layernorm"][2] != "3e-3"
    assert "diverged at 3e-3 (counted as the loss at init)" in table["layernorm"][7]
    assert table["dyt"][2] == "—" and "every grid point diverged" in table["dyt"][7]
    assert not any(name.startswith("dyt") for name in table_rows(section(md, "Results"), "Variant"))

    ax = Figure().add_subplot()
    _panel(ax, load_results(run_dir), None, ["rmsnorm", "layernorm", "dyt"])
    crosses = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines if line.get_marker() == "x"]
    stars = [line.get_xdata()[0] for line in ax.lines if line.get_marker() == "*"]
    assert ([0.003], [INIT]) in crosses and (GRID, [INIT] * 5) in crosses
    assert len(stars) == 2 and stars[0] == 0.003 and stars[1] != 0.003  # rmsnorm, layernorm; dyt has none
    assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == INIT for line in ax.lines)


def test_an_incomplete_tuning_is_in_progress_with_no_verdict_row(tmp_path):
    waiting_above = {**FALLING, 0.024: None}  # best on the high edge: the extension above is trained next
    md = write_report(make_tuned_dir(tmp_path, {
        ("rmsnorm", None): BOWL, ("layernorm", None): {0.00075: 4.7, 0.0015: 4.5, 0.003: None, 0.006: None, 0.012: None},
        ("dyt", None): waiting_above})).read_text()
    table = table_rows(section(md, "Learning rate"), "Variant")
    assert table["layernorm"][7] == "tuning: 2 of 5 points run; no verdict yet"
    assert table["layernorm"][2] == "—" and table["layernorm"][6] == ""
    assert table["dyt"][7].startswith("tuning: 5 of 6 points run (extending the grid above")
    results = section(md, "Results")
    assert "Still tuning, so not compared yet: layernorm (2 of 5 points run), dyt (5 of 6 points run)." in results
    assert list(table_rows(results, "Variant")) == ["rmsnorm@lr=0.003 (baseline)"]


def test_sizes_show_how_the_optimum_moves(tmp_path):
    shifted = {v: BOWL[v / 2] for v in GRID[1:]} | {0.00075: 4.9}  # the same bowl one grid step higher: 6e-3
    md = write_report(make_tuned_dir(tmp_path, {
        ("rmsnorm", "d64"): shifted, ("layernorm", "d64"): shifted,
        ("rmsnorm", "d128"): BOWL, ("layernorm", "d128"): FALLING}, sizes=["d64", "d128"])).read_text()
    moves = table_rows(section(md, "Learning rate").split("### How the optimum moves with size")[1], "Variant")
    assert moves["rmsnorm"] == ["rmsnorm", "6.73e-3", "3.37e-3", "0.50×"]
    assert moves["layernorm"][2] == "1.2e-2 (high edge)"
    assert (tmp_path / "plots" / "tuning.png").exists()


def test_a_sensitivity_difference_needs_two_tuning_seeds(tmp_path):
    one = write_report(make_tuned_dir(tmp_path / "one", {("rmsnorm", None): BOWL, ("layernorm", None): FALLING}))
    assert "with one tuning seed there is no seed-to-seed spread to bound them" in one.read_text()

    # per seed: rmsnorm's sensitivity is 0.13 both times; layernorm's 0.134, then 0.144 (steeper on seed 1)
    bowl2 = {v: [x, x] for v, x in BOWL.items()}
    falling2 = {v: [x, x + (0.05 if v == GRID[0] else 0.0)] for v, x in FALLING.items()}
    two = write_report(make_tuned_dir(tmp_path / "two", {("rmsnorm", None): bowl2, ("layernorm", None): falling2},
                                      tuning_seeds=(0, 1))).read_text()
    row = table_rows(section(two, "Learning rate").split("### Sensitivity vs the baseline")[1], "Variant")["layernorm"]
    d = [0.134 - 0.13, 0.144 - 0.13]
    assert row[1] == "rmsnorm" and row[3:] == ["2", "5"]
    half = 12.706 * abs(d[1] - d[0]) / 2  # t(0.975, 1 dof) × std (ddof 1) / sqrt(2)
    assert row[2] == f"{sum(d) / 2:+.4f} [{sum(d) / 2 - half:+.4f}, {sum(d) / 2 + half:+.4f}]"


def test_another_key_is_named_as_itself(tmp_path):
    md = write_report(make_tuned_dir(tmp_path, {("rmsnorm", None): BOWL, ("layernorm", None): BOWL},
                                     key="train.weight_decay")).read_text()
    assert h2(md)[:2] == ["Results", "Tuned train.weight_decay"]
    assert "each variant at its own tuned train.weight_decay" in section(md, "Results")
    assert table_rows(section(md, "Results"), "Variant")["layernorm@weight_decay=0.003"][1] == "3e-3"
