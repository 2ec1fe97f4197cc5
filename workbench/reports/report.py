"""write_report(run_dir): results.json (+ metrics.json files) -> report.md, report.html, plots/*.png."""

from __future__ import annotations

import logging
from pathlib import Path

from ..fileio import write_bytes, write_text
from . import lengths as length_report
from . import scaling_section as scaling_report
from . import sections
from . import tuning_section as tuning_report
from .analysis.comparisons import compare, cumulative
from .answer_figure import answer_images, answer_plots
from .compute import attention_section, compute_section
from .control_section import control_section
from .doc import to_html, to_markdown
from .headline import headline
from .ladder import ladder_section
from .literature import literature_section
from .load import COMPLETED, DIVERGED, load_curves, load_results
from .plots import Plot, make_plots
from .samples import samples_section
from .analysis.scale_verdicts import scale_summary
from .scale_verdicts_section import scale_verdicts_section
from .speed import speed_section
from .summary import summarize_all, table_order

logger = logging.getLogger(__name__)


def write_report(run_dir: str | Path) -> Path:
    """Rebuild the run folder's report from results.json; returns the path of report.md.

    Raises ReportError (one line, naming the file) when results.json is missing or malformed.
    Every file is written atomically, so a reader never sees half a report.
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    curves = {}
    no_curves = []
    for v in results.variants:
        for run in v.runs:
            c = load_curves(run_dir, v, run)
            if c is not None:
                curves[(v.name, run.seed)] = c
            elif run.status in (COMPLETED, DIVERGED):  # runs that should have logged curves
                no_curves.append(run)
    comparisons = compare(results, run_dir, curves)
    to_first = cumulative(results, run_dir, curves) if results.ladder else {}
    summaries = summarize_all(results, comparisons)
    order = table_order(results)
    plots = make_plots(results, curves, summaries)
    tuning_blocks, tuning_plot = tuning_report.tuning_section(results.design())
    scaling_blocks, scaling_plot = scaling_report.scaling_section(results)
    length_blocks, length_plot = length_report.lengths_section(order)
    speed_blocks = speed_section(results, order)
    scale_blocks, scale_plots = scale_verdicts_section(results, scale_summary(results, comparisons))

    answer = answer_plots(results, order, comparisons, summaries)

    against = "previous rung" if results.ladder else "baseline"
    # The answer first (headline sentences, the paired differences, the unpaired means), then the tables.
    blocks = (sections.header(results, no_curves) + headline(results, order, comparisons) + answer_images(answer)
              + sections.results_section(summaries, bool(speed_blocks), against, results=results)
              + control_section(results, comparisons)
              + ladder_section(results, comparisons, to_first) + tuning_blocks
              + sections.how_to_read(str(run_dir), results, comparisons, bool(speed_blocks))
              # published claims are against the baseline: a ladder's rungs are checked by their cumulative view
              + literature_section(results, to_first if results.ladder else comparisons)
              + speed_blocks + scaling_blocks + scale_blocks + length_blocks
              + attention_section(order, summaries) + compute_section(results, order)
              + sections.variants_section(results, order)
              + sections.runs_section(order, set(curves)) + samples_section(results, run_dir)
              + sections.plots_section(plots))
    sectioned = [p or Plot(m.NAME, m.TITLE, None) for m, p in ((tuning_report, tuning_plot), (scaling_report, scaling_plot),
                                                               (length_report, length_plot))]
    sectioned += scale_plots
    for p in answer + plots + sectioned:
        path = run_dir / "plots" / f"{p.name}.png"
        if p.png:
            write_bytes(path, p.png)
        elif path.exists():  # a figure from an earlier render that no longer has data
            path.unlink()
    write_text(run_dir / "report.html", to_html(blocks, f"Ablation report: {results.experiment}"))
    md_path = run_dir / "report.md"
    write_text(md_path, to_markdown(blocks))
    logger.info("wrote %s and report.html (%d plots)", md_path, sum(1 for p in answer + plots + sectioned if p.png))
    return md_path
