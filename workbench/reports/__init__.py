"""Ablation reports: results.json -> report.md, self-contained report.html and plots/*.png.

Two halves: ``reports.analysis`` (verdicts, comparisons, stats, scaling, scale verdicts: pure, what the runner needs)
and the rendering modules beside it (sections, plots, doc), which only format what results.json and the analysis say.
``reports.load`` reads results.json for both.

compare() is also the runner's: after each round of seeds it says which comparisons are still undecided; scale_summary()
is what it stores as results.json "scale" ("by_arch": each verdict at every size of a sweep, and where its effect changes
sign; "agreement": how often a smaller size orders the pairs of variants as the largest does).
write_report() is imported on first use, so the analysis alone loads no matplotlib.
"""

from .analysis.comparisons import Comparison, compare, cumulative
from .analysis.scale_verdicts import scale_summary
from .analysis.stats import Summary, summarize
from .load import ReportError, load_results

__all__ = ["Comparison", "ReportError", "Summary", "compare", "cumulative", "load_results", "scale_summary", "summarize",
           "write_report"]


def __getattr__(name: str):
    """``write_report``, the rendering's entry point, imported when first asked for (PEP 562)."""
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
