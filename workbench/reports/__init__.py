"""Ablation reports: results.json -> report.md, self-contained report.html and plots/*.png.

compare() is also the runner's: after each round of seeds it says which comparisons are still undecided; scale_summary()
is what it stores as results.json "scale" (each verdict at every size of a sweep, and where its effect changes sign).
"""

from .comparisons import Comparison, compare, cumulative
from .load import ReportError, load_results
from .report import write_report
from .scale_verdicts import scale_summary
from .stats import Summary, summarize

__all__ = ["Comparison", "ReportError", "Summary", "compare", "cumulative", "load_results", "scale_summary", "summarize",
           "write_report"]
