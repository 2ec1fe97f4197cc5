"""Ablation reports: results.json -> report.md, self-contained report.html and plots/*.png.

compare() is also the runner's: after each round of seeds it says which comparisons are still undecided.
"""

from .comparisons import Comparison, compare
from .load import ReportError, load_results
from .report import write_report
from .stats import Summary, summarize

__all__ = ["Comparison", "ReportError", "Summary", "compare", "load_results", "summarize", "write_report"]
