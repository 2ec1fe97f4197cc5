"""report.html as a reader sees it: the answer first (a sentence per comparison, the paired differences the verdict
tests), no word split inside a table cell, in a real headless browser at 800 and 1280 px; the figure command."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from browser import NO_BROWSER, find_browser, measure
from test_reports import BASE, MAIN, REFERENCE, SAMPLES, SPEED, WORSE, make_run_dir, table_rows
from workbench.cli import main
from workbench.reports import compare, load_results, write_report
from workbench.reports.answer_figure import _rows, draw_paired
from workbench.reports.headline import compared
from workbench.reports.summary import table_order

FLOOR = 6.3646  # the main job's unigram val loss
DATA = {"train_tokens": 1_227_995, "val_tokens": 38_973, "vocab_size": 2048, "unigram_val_loss": FLOOR,
        "fingerprint": "a71a522a7d2bdb1e"}
LONG = "swiglu_ffn_with_rope_and_qk_norm_everywhere"  # a long identifier: may wrap only after its _
PAGE = {**MAIN, LONG: {s: ("completed", x - 0.05, 990.0, None) for s, x in enumerate(BASE)}}


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A report with every table a sweep can have: results, literature, speed, variants, runs with errors, samples."""
    run_dir = make_run_dir(tmp_path_factory.mktemp("page"), PAGE, baseline="rmsnorm", data=DATA, speed=SPEED,
                           reference=REFERENCE, samples=SAMPLES)
    write_report(run_dir)
    return run_dir


def _section(md: str, title: str) -> str:
    return md[md.index(f"## {title}"):].split("\n## ")[0]


# ---------------------------------------------------------------- in a browser

@pytest.mark.parametrize("width", [800, 1280])
def test_the_first_screen_holds_the_answer_and_no_cell_splits_a_word(page, width):
    browser = find_browser()
    if browser is None:
        pytest.skip(NO_BROWSER)
    seen = measure(page / "report.html", width, 800, browser)
    assert seen["split"] == [], f"words split across lines inside table cells at {width} px: {seen['split']}"
    assert seen["headline"]["text"].startswith("layernorm vs rmsnorm: undecided")
    assert seen["headline"]["bottom"] <= 800 and seen["figure"]["bottom"] <= 800, seen
    scroll_width, client_width = seen["page"][:2]
    assert scroll_width <= client_width, f"the page scrolls sideways at {width} px"
    if width == 1280:
        assert seen["wide"] == [], "at 1280 px every table fits the page"


def test_the_probe_sees_split_words_under_the_old_rule(page):
    """The check can fail: with `overflow-wrap:anywhere` on cells (the old rule) the same page splits words."""
    browser = find_browser()
    if browser is None:
        pytest.skip(NO_BROWSER)
    old = page / "old_rule.html"
    old.write_text((page / "report.html").read_text().replace("</style>", "th,td{overflow-wrap:anywhere}</style>"))
    assert measure(old, 800, 800, browser)["split"]


# ---------------------------------------------------------------- the page's order and words

def test_the_page_opens_on_the_answer_then_the_tables_then_how_to_read(page):
    md = (page / "report.md").read_text()
    marks = ["# Ablation report: ablate_norm", "- **Baseline:** rmsnorm; **Seeds:** 0, 1, 2; **Runs:** 9/12 completed;",
             "- **Data:** ", "- layernorm vs rmsnorm: **undecided** — Δ (nats/token) ",
             "](plots/paired_differences.png)", "](plots/final_val_loss.png)", "## Results", "## How to read this",
             "## Literature check", "## Plots"]
    at = [md.index(m) for m in marks]
    assert at == sorted(at)
    assert [line for line in md.splitlines() if " vs rmsnorm: " in line and line.startswith("- ")] == [
        line for line in md.splitlines() if line.startswith(("- layernorm vs", "- post_norm vs", f"- {LONG} vs"))]


def test_each_headline_sentence_says_what_its_table_row_says(page):
    md = (page / "report.md").read_text()
    rows = table_rows(md)
    d = np.subtract(list(WORSE.values()), [BASE[s] for s in WORSE])
    ln = next(line for line in md.splitlines() if line.startswith("- layernorm vs rmsnorm:"))
    assert ln.startswith(f"- layernorm vs rmsnorm: **undecided** — Δ (nats/token) {d.mean():+.4f} (not estimable at n = 2), "
                         f"compute multiplier {rows['layernorm'][9]}, 2 seeds paired of 3 run.")
    long = next(line for line in md.splitlines() if line.startswith(f"- {LONG} vs"))
    assert f"Δ (nats/token) {rows[LONG][8]}" in long and "3 seeds." in long and f"**{rows[LONG][7]}**" in long


def test_how_to_read_names_every_method_the_page_uses(page, tmp_path):
    md = (page / "report.md").read_text()
    section = _section(md, "How to read this")
    for method in ("**The first figure:**", "**Verdicts:**", "Holm", "pooled", "±0.01 nats", "**Not estimable at n = k:**",
                   "**Not learned yet:**", "0.1 nats below the unigram floor", "**Compute multiplier:**",
                   "**Step time vs baseline (Speed):**", "t-interval on their logs"):
        assert method in section, method
    plain = write_report(make_run_dir(tmp_path, MAIN, baseline="rmsnorm", metrics=False)).read_text()
    assert "Step time vs baseline" not in _section(plain, "How to read this")  # no timing, no words on it


# ---------------------------------------------------------------- not learned yet

def _sentence(tmp_path, runs, **top) -> str:
    md = write_report(make_run_dir(tmp_path, runs, baseline="base", seeds=(0, 1), metrics=False, data=DATA,
                                   **top)).read_text()
    return next(line for line in md.splitlines() if line.startswith("- plug vs base:"))


def test_a_twelve_step_run_gets_no_verdict_and_is_told_to_train_longer(tmp_path):
    twelve = {"base": {0: ("completed", 6.6966, 1.0, None), 1: ("completed", 6.6990, 1.0, None)},
              "plug": {0: ("completed", 6.7245, 1.0, None), 1: ("completed", 6.7270, 1.0, None)}}
    line = _sentence(tmp_path / "both", twelve)
    assert line == ("- plug vs base: **not learned yet** — neither plug nor base has learned more than token "
                    "frequencies: plug ends at 6.7270 and base ends at 6.6990 (worst seed), not 0.1 nats below the "
                    f"unigram floor {FLOOR:.4f}; no verdict (2 seeds). To compare them, raise train.steps (now 200) so "
                    "that both train longer.")
    one = {"base": {0: ("completed", 4.26, 1.0, None), 1: ("completed", 4.29, 1.0, None)},
           "plug": {0: ("completed", 6.30, 1.0, None), 1: ("completed", 4.30, 1.0, None)}}
    line = _sentence(tmp_path / "one", one, budget={"flops": 1e13})
    assert "— plug has not learned more than token frequencies: plug ends at 6.3000 (worst seed)" in line
    assert "raise budget.flops (now 1e+13)" in line
    assert not re.search(r"\b(better|worse|equivalent|undecided)\b", line) and "Δ" not in line


# ---------------------------------------------------------------- the figure draws what the verdict tests

def _drawn(run_dir: Path):
    results = load_results(run_dir)
    pairs = compared(results, table_order(results), compare(results, run_dir))
    fig = Figure()
    ax = fig.add_subplot()
    draw_paired(ax, _rows(results, pairs), results.margin)
    return pairs, ax


def test_the_figure_draws_each_seeds_paired_difference_and_the_verdicts_interval(tmp_path):
    base = [3.20, 3.25, 3.22, 3.31]
    runs = {"base": {s: ("completed", x, 1.0, None) for s, x in enumerate(base)},
            "good": {s: ("completed", x - 0.1 + 0.004 * s, 1.0, None) for s, x in enumerate(base)},
            "noisy": {s: ("completed", x + (0.03, -0.03, 0.006, 0.0)[s], 1.0, None) for s, x in enumerate(base)}}
    pairs, ax = _drawn(make_run_dir(tmp_path, runs, baseline="base", seeds=(0, 1, 2, 3), metrics=False))
    points = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    for row, ((v, c), xy) in enumerate(zip(pairs, points)):
        expected = [runs[v.name][s][1] - base[s] for s in range(4)]  # variant - baseline, seed by seed
        np.testing.assert_allclose(xy[:, 0], expected, atol=1e-12)
        assert np.all(np.abs(xy[:, 1] - row) < 0.5)  # on its own row
    assert [v.name for v, _ in pairs] == ["good", "noisy"] and all(c.estimable for _, c in pairs)
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    spans = sorted((min(s[:, 0]), max(s[:, 0])) for b in bars for s in b.get_segments() if np.ptp(s[:, 0]) > 0)
    assert spans == sorted((c.low, c.high) for _, c in pairs)
    band = [p for p in ax.patches if math.isclose(p.get_x(), -0.01) and math.isclose(p.get_width(), 0.02)]
    assert len(band) == 1  # the equivalence band ±margin
    labels = [t.get_text() for t in ax.texts]
    assert labels == [c.verdict for _, c in pairs]


def test_the_figure_draws_no_interval_the_data_cannot_bound(tmp_path):
    runs = {"base": {0: ("completed", 3.20, 1.0, None), 1: ("completed", 3.25, 1.0, None)},
            "v": {0: ("completed", 3.10, 1.0, None), 1: ("completed", 3.17, 1.0, None)}}
    pairs, ax = _drawn(make_run_dir(tmp_path, runs, baseline="base", seeds=(0, 1), metrics=False))
    assert not pairs[0][1].estimable
    assert not [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [t.get_text() for t in ax.texts] == ["undecided; interval not estimable at n = 2"]


# ---------------------------------------------------------------- the README picture's command

def test_the_figure_command_draws_the_top_of_the_report_without_loading_a_model(page, tmp_path, capsys):
    out = tmp_path / "report.png"
    assert main(["figure", str(page), str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and capsys.readouterr().out.strip() == f"wrote {out}"
    assert main(["figure", str(tmp_path / "nothing"), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.json" in err
    code = (f"import sys; from workbench.cli import main; main(['figure', {str(page)!r}, {str(tmp_path / 'b.png')!r}]); "
            "print(sorted({'lightning', 'torch'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_unpaired_means_show_the_unigram_floor_only_where_a_side_has_not_learned(tmp_path):
    from workbench.reports.answer_figure import _floor
    from workbench.reports.plots import draw_final_losses
    from workbench.reports.summary import summarize_all

    def floor_lines(runs) -> list[float]:
        run_dir = make_run_dir(tmp_path / str(len(list(tmp_path.iterdir()))), runs, baseline="base", seeds=(0, 1),
                               metrics=False, data=DATA)
        results = load_results(run_dir)
        comparisons = compare(results, run_dir)
        ax = Figure().add_subplot()
        draw_final_losses(ax, summarize_all(results, comparisons),
                          _floor(compared(results, table_order(results), comparisons)))
        return [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == ":"]

    assert floor_lines({"base": {0: ("completed", 6.70, 1.0, None), 1: ("completed", 6.69, 1.0, None)},
                        "plug": {0: ("completed", 6.72, 1.0, None), 1: ("completed", 6.73, 1.0, None)}}) == [FLOOR]
    assert floor_lines({"base": {0: ("completed", 4.20, 1.0, None), 1: ("completed", 4.29, 1.0, None)},
                        "plug": {0: ("completed", 4.22, 1.0, None), 1: ("completed", 4.23, 1.0, None)}}) == []
